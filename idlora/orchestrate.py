"""``make tableN``: run what a table needs that is not there yet, then build the table from results files.

Runs are trained and evaluated one after another in fresh processes (``scripts/train.py``), or submitted to
Slurm (``CLUSTER=slurm``; run the target again later to collect what finished). A run whose results file is
complete and holds the same config is skipped, so an interrupted ``make tableN`` redoes only what is missing.
Each run holds a file lock while it trains, so two table targets started at once never train the same run
twice or write one results file together.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .errors import ConfigError
from .launch import REPO, Run, is_complete, submit

SCALES = ("mini", "paper", "tiny")
CLUSTERS = ("local", "slurm")


def table_runs(table: str, scale: str) -> list[Run]:
    from .tables.from_runs import experiment_list

    runs = []
    for spec in experiment_list(table)["runs"]:
        overrides = list(spec.overrides) + ([f"run_tag={spec.run_tag}"] if spec.run_tag else [])
        runs.append(Run(spec.experiment, spec.method, overrides, scale))
    return runs


def run_locally(run: Run, results_dir: Path, output_root: str | None = None) -> bool:
    """Train and evaluate one run in a fresh process unless complete; False if it failed."""
    from filelock import FileLock

    run_id = run.config().run_id
    lock_dir = results_dir / ".locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(str(lock_dir / f"{run_id}.lock")):
        if is_complete(run, results_dir):  # another target may have finished it while we waited
            return True
        args = [sys.executable, str(REPO / "scripts" / "train.py"), *run.args(), f"results_dir={results_dir}",
                "train.resume=true"] + ([f"output_root={output_root}"] if output_root else [])
        print(f"\n=== {run_id} ===\n{' '.join(args[1:])}", flush=True)
        return subprocess.run(args, cwd=REPO).returncode == 0


def make_table(table: str, scale: str = "mini", cluster: str = "local", results_dir: str = "results/runs",
               out_dir: str = "results/tables", output_root: str | None = None) -> int:
    """Exit status: 0 when every cell has a run, 1 when some runs failed or are still pending."""
    from .tables import RUN_TABLES, TABLES, build_table

    if table not in TABLES:
        raise ConfigError(f"unknown table {table!r}; available: {', '.join(TABLES)} (make table1 … make table8, make table_init)")
    if scale not in SCALES:
        raise ConfigError(f"unknown SCALE={scale!r}; choose one of: {', '.join(SCALES)}")
    if cluster not in CLUSTERS:
        raise ConfigError(f"unknown CLUSTER={cluster!r}; choose one of: {', '.join(CLUSTERS)}")
    results = Path(results_dir).resolve()  # the runs' processes work in the repository, wherever this was called
    output_root = str(Path(output_root).resolve()) if output_root else None
    status = 0
    if table in RUN_TABLES:
        runs = table_runs(table, scale)
        missing = [r for r in runs if not is_complete(r, results)]
        print(f"{table} at scale {scale}: {len(runs)} runs, {len(missing)} to do", flush=True)
        if cluster == "slurm" and missing:
            submit(missing)
            print(f"submitted {len(missing)} runs; run `make {table} SCALE={scale}` again when they finish.")
            status = 1
        else:
            failed = [r.config().run_id for r in missing if not run_locally(r, results, output_root)]
            if failed:
                print(f"{len(failed)} run(s) failed: {', '.join(failed)} — their cells stay empty; rerun to retry.")
                status = 1
    t = build_table(table, scale, str(results))
    paths = t.write(out_dir)
    print(t.to_markdown())
    print("wrote " + ", ".join(str(p) for p in paths))
    return status
