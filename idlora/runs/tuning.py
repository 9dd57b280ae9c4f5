"""The fair protocol's runs (``claims/protocol.yaml``; docs/protocol.md): tuning, then final and A/A runs.

    tuning_runs(protocol)          # every method x every lr of its grid, on the tuning seed, dev loss only
    final_runs(protocol, choices)  # every method x final seed at its chosen (lr, checkpoint), test scored once
    aa_runs(protocol, choices)     # LoRA again on the A/A seeds: the calibration's second set
    run_missing(runs)              # train (and score) the runs whose complete results file is missing

A run is launched as ``scripts/train.py`` launches it, into the pilot's own results directory, so its file is one
results file like any other (provenance, config, curves). Two launch slots may run side by side (``jobs=2``), each
on one thread: on a 2-core machine that is 2x the throughput of one run on two threads.
"""

from __future__ import annotations

import os
import subprocess
from concurrent.futures import ThreadPoolExecutor

from tqdm import tqdm

from ..experiments import Run
from ..protocol import base_overrides, final_overrides, grid, tuning_overrides
from ..results import run_paths
from .launch import is_complete, train_command

AA_METHOD = "lora"


def _run(protocol: dict, method: str, overrides: list[str], row: str) -> Run:
    pilot = protocol["pilot"]
    return Run(pilot["experiment"], method, [*overrides, f"results_dir={pilot['results_dir']}/runs",
                                             "output_root=runs/protocol"], row=row)


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


def _launch(run: Run) -> str:
    """Train (and score) ``run`` unless its complete results file exists; its output goes to a log file beside its
    output directory (``<output_root>/logs/<run_id>.log``), whose tail a failure shows."""
    if is_complete(run):
        return f"{run.row}: complete, kept"
    log = run_paths(run.config()).log
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    with log.open("w") as out:
        code = subprocess.run(train_command(run), env=env, stdout=out, stderr=subprocess.STDOUT).returncode
    if code:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        raise RuntimeError(f"{run.row} failed (exit {code}; log {log}): {' '.join(run.args())}\n{tail}")
    return f"{run.row}: done (log {log})"


def run_missing(runs: list[Run], jobs: int = 1) -> None:
    """Train and score each run whose complete results file is missing, ``jobs`` at a time (a complete file is kept:
    rerunning after an interruption launches only what is missing). The first failure stops the batch."""
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for line in tqdm(pool.map(_launch, runs), total=len(runs), desc="protocol runs", unit="run"):
            print(line, flush=True)
