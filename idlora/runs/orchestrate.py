"""``make tableN``: run what a table needs that is not there yet, then build the table from results files.

Runs are trained and evaluated in fresh processes (``scripts/train.py``), ``jobs`` of them at once (each with
``cpus // jobs`` threads; its output then goes to ``<runs>/logs/<run_id>.log``), or submitted to Slurm
(``CLUSTER=slurm``; run the target again later to collect what finished). ``jobs=auto`` runs two at once on a
CPU-only machine at scale mini/tiny, where a single run's small matrix products leave the second core mostly
idle (a run's numbers do not depend on its thread count: tested), and one at a time otherwise (paper scale, GPUs:
each run takes every GPU through Accelerate). A run whose results file is
complete and holds the same config is skipped, so an interrupted ``make tableN`` redoes only what is missing.
Each run holds a file lock while it trains, so two table targets started at once never train the same run
twice or write one results file together. Runs launched together train at once but score one benchmark at a time
(``evaluate.SCORING_LOCK``): one run's MMLU scoring through lm-eval holds up to 13 GB (its batch's full-vocabulary
log-probabilities), and two of them at once were killed for memory on a 24 GB machine.
"""

from __future__ import annotations

import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import NamedTuple

import torch
from filelock import FileLock

from .. import regeneration
from ..errors import ConfigError
from ..eval.evaluate import SCORING_LOCK
from ..experiments import RUN_TABLES, Run, served_runs
from ..protocol import OUTPUT_ROOT, load_protocol, load_records, runs_dir
from ..reports.preregistered import load_claims
from ..reports.tables import TABLES, build_table
from ..results import run_paths
from .launch import (REPO, accelerate_launcher, is_complete, pmrc_command, require_committed_code, slurm_options,
                     submit, train_command)

SCALES = ("mini", "paper", "tiny")
CLUSTERS = ("local", "slurm")


def auto_jobs(scale: str) -> int:
    """Runs to train at once for ``jobs=auto``: 2 on a CPU-only machine with 2+ cores at scale mini/tiny, else 1."""
    cpus = os.cpu_count() or 1
    return 2 if scale in ("mini", "tiny") and cpus >= 2 and not torch.cuda.is_available() else 1


def parse_jobs(value, scale: str) -> int:
    if value in (None, "auto"):
        return auto_jobs(scale)
    try:
        jobs = int(value)
    except (TypeError, ValueError):
        jobs = 0
    if jobs < 1:
        raise ConfigError(f"JOBS={value!r} is not valid; give a number of runs to train at once (>= 1) or auto.")
    return jobs


def run_locally(run: Run, results_dir: Path, output_root: str | None = None, threads: int | None = None,
                log: Path | None = None) -> bool:
    """Train and evaluate one run in a fresh process unless complete; False if it failed.

    ``threads`` caps the process's CPU threads; ``log`` receives its output instead of this terminal."""
    paths = run_paths({**run.config(), "results_dir": str(results_dir)})
    run_id, lock = paths.run_id, paths.launch_lock
    lock.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(lock)):
        if is_complete(run, results_dir):  # another target may have finished it while we waited
            return True
        where = [f"results_dir={results_dir}"] + ([f"output_root={output_root}"] if output_root else [])
        placed = run.at(run.scale, where)
        env = dict(os.environ)
        if threads:
            env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        if log is not None:  # runs at once: their benchmarks are scored one at a time (evaluate.SCORING_LOCK)
            env[SCORING_LOCK] = str(log.parent / ".scoring.lock")
        return all(_run_command(cmd, run_id, env, log) for cmd in _commands(placed))


def _commands(run: Run) -> list[list[str]]:
    """What one run executes: at paper scale the single-process PMRC step, then ``accelerate launch`` with the
    method's shipped DeepSpeed config (every GPU of the machine); elsewhere ``scripts/train.py`` in one process."""
    if run.scale != "paper" or run.method == "base":  # the untrained model is scored in one process
        return [train_command(run)]
    pmrc = pmrc_command(run)
    return ([pmrc] if pmrc else []) + [train_command(run, launcher=accelerate_launcher(run))]


def _run_command(args: list[str], run_id: str, env: dict, log: Path | None) -> bool:
    print(f"\n=== {run_id} ===\n{' '.join(args[1:])}" + (f"\n    log: {log}" if log else ""), flush=True)
    if log is None:
        return subprocess.run(args, cwd=REPO, env=env).returncode == 0
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as fh:
        ok = subprocess.run(args, cwd=REPO, env=env, stdout=fh, stderr=subprocess.STDOUT).returncode == 0
    if not ok:
        tail = log.read_text(errors="replace").splitlines()[-15:]
        print(f"!!! {run_id} failed; the end of {log}:\n" + "\n".join(tail), flush=True)
    return ok


def run_all_locally(runs: list[Run], results_dir: Path, output_root: str | None, jobs: int) -> list[str]:
    """Train every run, ``jobs`` at once; returns the ids of the runs that failed."""
    if jobs <= 1:
        return [r.config().run_id for r in runs if not run_locally(r, results_dir, output_root)]
    threads = max(1, (os.cpu_count() or 1) // jobs)
    logs = Path(output_root or REPO / "runs") / "logs"
    print(f"{len(runs)} runs, {jobs} at once with {threads} thread(s) each; output in {logs}/", flush=True)
    t0, done, failed = time.time(), 0, []

    def one(run: Run) -> tuple[str, bool]:
        paths = run_paths({**run.config(), "output_root": str(logs.parent)})
        return paths.run_id, run_locally(run, results_dir, output_root, threads=threads, log=paths.log)

    with ThreadPoolExecutor(jobs) as pool:
        for future in as_completed([pool.submit(one, r) for r in runs]):
            run_id, ok = future.result()
            done += 1
            failed += [] if ok else [run_id]
            print(f"[{done}/{len(runs)}] {run_id} {'done' if ok else 'FAILED'}  ({time.time() - t0:.0f} s elapsed)",
                  flush=True)
    return failed


class TablePlan(NamedTuple):
    runs: list[Run]  # distinct in effect: what is trained
    served: int  # the table's runs, each served by one of ``runs``
    results: Path
    output_root: str | None
    protocol: bool  # the fair protocol's runs (a regenerated table): made from committed code only


def _table_plan(table: str, scale: str, results: Path, output_root: str | None,
                overrides: list[str] | None) -> TablePlan:
    """What the table trains, where its results files and outputs go. Runs identical in effect
    (at mini, the Mistral half of Tables 1-2; Table 3's rows that are Table 2's) are trained once, as the first of
    them: perhaps a run of an earlier table, which then fills both. A regenerated table's runs are the fair
    protocol's (``regeneration.distinct_runs``), filed in its runs directory, and take no extra overrides."""
    protocol = load_protocol()
    regenerated = regeneration.is_regenerated(protocol, table, scale)
    if regenerated:
        if overrides:
            raise ConfigError(f"{table} is built from the fair protocol's runs (claims/protocol.yaml: regenerated), "
                              f"which take no extra overrides; drop {' '.join(overrides)}")
        served = regeneration.served_final_runs(protocol, table, load_records(protocol), load_claims(), scale)
        results, output_root = (REPO / runs_dir(protocol)).resolve(), str(REPO / OUTPUT_ROOT)
    else:
        served = served_runs(table, scale, overrides)
    distinct = list({tuple(serving.args()): serving for _, serving, _ in served}.values())
    return TablePlan(distinct, len(served), results, output_root, regenerated)


def make_table(table: str, scale: str = "mini", cluster: str = "local", results_dir: str = "results/runs",
               out_dir: str = "results/tables", output_root: str | None = None, jobs: int | str | None = 1,
               overrides: list[str] | None = None, slurm: dict | None = None) -> int:
    """Exit status: 0 when every cell has a run, 1 when some runs failed or are still pending. ``overrides`` go to
    every run (e.g. local copies: ``local_data.saferpaca=FILE``); ``slurm`` holds sbatch options (``partition``...)."""
    if table not in TABLES:
        raise ConfigError(f"unknown table {table!r}; available: {', '.join(TABLES)} (make table1 … make table8, "
                          "make table_init, make table_rb, make table_router, make table_lr)")
    if scale not in SCALES:
        raise ConfigError(f"unknown SCALE={scale!r}; choose one of: {', '.join(SCALES)}")
    if cluster not in CLUSTERS:
        raise ConfigError(f"unknown CLUSTER={cluster!r}; choose one of: {', '.join(CLUSTERS)}")
    n_jobs = parse_jobs(jobs, scale)
    if cluster == "slurm":
        slurm_options(slurm or {})  # an unknown option fails before anything runs
    results = Path(results_dir).resolve()  # the runs' processes work in the repository, wherever this was called
    output_root = str(Path(output_root).resolve()) if output_root else None
    status = 0
    if table in RUN_TABLES:
        plan = _table_plan(table, scale, results, output_root, overrides)
        results, output_root = plan.results, plan.output_root
        missing = [r for r in plan.runs if not is_complete(r, results)]  # composes every run: a bad override fails
        print(f"{table} at scale {scale}: {plan.served} runs ({len(plan.runs)} distinct in effect), {len(missing)} "
              "to do" + (f" (the fair protocol's, in {results})" if plan.protocol else ""), flush=True)
        if missing and plan.protocol:
            require_committed_code()
        if cluster == "slurm" and missing:
            submit(missing, slurm=slurm)
            print(f"submitted {len(missing)} runs; run `make {table} SCALE={scale}` again when they finish.")
            status = 1
        else:
            failed = run_all_locally(missing, results, output_root, n_jobs)
            if failed:
                print(f"{len(failed)} run(s) failed: {', '.join(failed)} — their cells stay empty; rerun to retry.")
                status = 1
    t = build_table(table, scale, str(results), overrides)
    paths = t.write(out_dir)
    print(t.to_markdown())
    print("wrote " + ", ".join(str(p) for p in paths))
    if table in RUN_TABLES and status == 0:
        incomplete = [r.config().run_id for r in missing if not is_complete(r, results)]  # the others were
        if incomplete:  # e.g. a benchmark that crashed: the table has empty cells, and the exit status says so
            print(f"{len(incomplete)} run(s) without complete results: {', '.join(incomplete)}")
            status = 1
    return status
