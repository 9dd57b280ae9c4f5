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

from ..errors import ConfigError
from ..experiments import Run
from ..protocol import base_overrides, choose, final_overrides, grid, horizon_overrides, runs_dir, tuning_overrides
from ..results import uncommitted_code
from .launch import is_complete
from .orchestrate import run_all_locally

AA_METHOD = "lora"
OUTPUT_ROOT = "runs/protocol"  # the pilot runs' adapters, checkpoints and logs


def _run(protocol: dict, method: str, overrides: list[str], row: str) -> Run:
    return Run(protocol["pilot"]["experiment"], method,
               [*overrides, f"results_dir={runs_dir(protocol)}", f"output_root={OUTPUT_ROOT}"], row=row)


def tuning_runs(protocol: dict) -> list[Run]:
    return [_run(protocol, m, tuning_overrides(protocol, m, lr), f"tune/{m}/lr{lr:g}")
            for m in protocol["pilot"]["methods"] for lr in grid(protocol, m)]


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


def stage_runs(protocol: dict, stage: str, records: list[dict]) -> list[Run]:
    """The runs of one stage of ``scripts/protocol.py``; every stage after tuning reads the choices from the tuning
    runs' records (and refuses while the tuning of a method it needs is incomplete)."""
    if stage == "tune":
        return tuning_runs(protocol)
    choices = choose(protocol, records, protocol["horizon_check" if stage == "horizon" else "pilot"]["methods"])
    if stage == "final":
        return [base_run(protocol), *final_runs(protocol, choices)]
    return aa_runs(protocol, choices) if stage == "aa" else horizon_runs(protocol, choices)


def require_committed_code() -> None:
    """The protocol's runs are made from committed code (their records name a commit anyone can check out): refused,
    before any work, while a file the runs read differs from HEAD or is untracked, or without git."""
    changed = uncommitted_code()
    if changed is None:
        raise ConfigError("the fair protocol's runs record the commit they were made from: run them in a git checkout "
                          "of this repository.")
    if changed:
        raise ConfigError(f"the fair protocol's runs are made from committed code, and {len(changed)} file(s) differ "
                          f"from HEAD: {'; '.join(line.strip() for line in changed[:5])}. Commit them, or run from a "
                          "clean worktree (git worktree add ../clean HEAD).")


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
