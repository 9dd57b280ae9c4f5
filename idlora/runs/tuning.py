"""The fair protocol's runs (``claims/protocol.yaml``; docs/protocol.md): tuning, then final and A/A runs.

    tuning_runs(protocol)          # every method x every lr of its grid, on the tuning seed, dev loss only
    final_runs(protocol, choices)  # every method x final seed at its chosen (lr, checkpoint), test scored once
    aa_runs(protocol, choices)     # LoRA again on the A/A seeds: the calibration's second set
    horizon_runs(protocol, choices)  # the horizon check: two methods at their chosen lrs, the horizon stretched
    run_missing(protocol, runs, jobs)  # train (and score) the runs whose complete results file is missing

A run is launched as a table's runs are (``orchestrate.run_all_locally``), into the pilot's own results directory,
so its file is one results file like any other (provenance, config, curves). Two runs may go side by side
(``jobs=2``), each on its share of the cores: on a 2-core machine that is 2x the throughput of one run on two
threads.
"""

from __future__ import annotations

from .. import regeneration
from ..errors import ConfigError
from ..experiments import Run
from ..protocol import (OUTPUT_ROOT, base_overrides, candidates, choose, filed_overrides, final_overrides, grid,
                        horizon_overrides, runs_dir, tuning_overrides)
from ..reports.preregistered import load_claims
from .launch import is_complete, require_committed_code
from .orchestrate import run_all_locally

AA_METHOD = "lora"


def _run(protocol: dict, method: str, overrides: list[str], row: str) -> Run:
    return _filed(protocol, Run(protocol["pilot"]["experiment"], method, overrides, row=row))


def _filed(protocol: dict, run: Run) -> Run:
    return run.at(run.scale, filed_overrides(protocol))


def tuning_runs(protocol: dict, methods: list[str] | None = None) -> list[Run]:
    """Every lr of the grid for each of ``methods`` (default: the pilot's) on the pilot's experiment."""
    return [_run(protocol, m, tuning_overrides(protocol, m, lr), f"tune/{m}/lr{lr:g}")
            for m in methods or protocol["pilot"]["methods"] for lr in grid(protocol, m)]


def base_run(protocol: dict) -> Run:
    return _run(protocol, "base", base_overrides(protocol), "base")


def final_runs(protocol: dict, choices: dict) -> list[Run]:
    """Seed-major: seed s of every method before seed s+1, so that an interrupted batch leaves whole pairs."""
    return [_run(protocol, m, final_overrides(protocol, m, choices[m], s), f"final/{m}/s{s}")
            for s in protocol["final_seeds"] for m in protocol["pilot"]["methods"]]


def aa_runs(protocol: dict, choices: dict) -> list[Run]:
    return [_run(protocol, AA_METHOD, final_overrides(protocol, AA_METHOD, choices[AA_METHOD], s, stage="aa"),
                 f"aa/{AA_METHOD}/s{s}") for s in protocol["aa_seeds"]]


def horizon_runs(protocol: dict, choices: dict) -> list[Run]:
    """``horizon_check``'s runs: each of its methods on the tuning seed at its chosen lr, the horizon stretched."""
    horizon = protocol["horizon_check"]["horizon"]
    return [_run(protocol, m, horizon_overrides(protocol, m, choices[m]["lr"]), f"horizon{horizon}/{m}")
            for m in protocol["horizon_check"]["methods"]]


STAGES = ("tune", "final", "aa", "horizon")


def stage_runs(protocol: dict, stage: str, records: list[dict], table: str | None = None) -> list[Run]:
    """The runs of one stage of ``scripts/protocol.py``, the pilot's or, with ``table``, that table's
    (``table_runs``); every stage after tuning reads the choices from the tuning runs' records (and refuses while the
    tuning of a method it needs is incomplete)."""
    if table is not None:
        return table_runs(protocol, stage, records, table)
    if stage == "tune":
        return tuning_runs(protocol)
    choices = choose(protocol, records, protocol["horizon_check" if stage == "horizon" else "pilot"]["methods"])
    if stage == "final":
        return [base_run(protocol), *final_runs(protocol, choices)]
    return aa_runs(protocol, choices) if stage == "aa" else horizon_runs(protocol, choices)


def table_runs(protocol: dict, stage: str, records: list[dict], table: str) -> list[Run]:
    """A table's regeneration (``idlora.regeneration``): ``tune``, the grid of each of its methods (each method is
    tuned once, on the pilot's experiment, whatever tables it serves); ``final``, the bases and every arm on its seeds
    at its method's choice, each run trained once (a run identical in effect to an earlier table's or the pilot's is
    that run, its file already there)."""
    methods = regeneration.methods_of(table)
    if stage == "tune":
        return tuning_runs(protocol, methods)
    if stage != "final":
        raise ConfigError(f"stage={stage} is the pilot's; a table's regeneration has stage=tune and stage=final")
    untuned = [m for m in methods if not _tuned(protocol, records, m)]
    if untuned:
        raise ConfigError(f"{table}'s methods {untuned} are not tuned yet (a tuning run is missing); run `python "
                          f"scripts/protocol.py table={table} stage=tune` first.")
    return regeneration.distinct_runs(protocol, table, records, load_claims())


def _tuned(protocol: dict, records: list[dict], method: str) -> bool:
    try:
        candidates(protocol, records, method)
    except ConfigError:
        return False
    return True


def run_missing(protocol: dict, runs: list[Run], jobs: int = 1) -> None:
    """Train and score each run whose complete results file is missing, ``jobs`` at a time, through the tables'
    launcher (``orchestrate.run_all_locally``: a lock per run, a complete file kept, with ``jobs`` > 1 each run on
    its share of the cores and its output in ``RunPaths.log``), from committed code (``require_committed_code``);
    raises naming the runs that failed."""
    missing = [run for run in runs if not is_complete(run, runs_dir(protocol))]  # as make_table: composed once
    if missing:
        require_committed_code()
    failed = run_all_locally(missing, runs_dir(protocol), OUTPUT_ROOT, jobs)
    if failed:
        raise RuntimeError(f"{len(failed)} protocol run(s) failed: {', '.join(failed)}; their logs are in "
                           f"{OUTPUT_ROOT}/logs/. Fix the cause and run the same stage again (complete runs are kept).")
