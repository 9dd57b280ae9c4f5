"""Shared set-up of the paper-scale simulation tests: the tiny HF LLaMA and hub-schema files (idlora.models.tiny), the
overrides that point a table's runs at them, and fake Slurm commands (sbatch, squeue, scontrol) on PATH."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from idlora.models import tiny as testing

REPO = Path(__file__).parents[1]

FAKE_SBATCH = """#!/bin/bash
# fake sbatch --parsable SCRIPT: queue a job (state PENDING), print its id
set -e
n=$(( $(cat "$FAKE_SLURM/next" 2>/dev/null || echo 100) + 1 )); echo $n > "$FAKE_SLURM/next"
mkdir -p "$FAKE_SLURM/queue"; echo PENDING > "$FAKE_SLURM/queue/$n"
echo "$n $*" >> "$FAKE_SLURM/sbatch.log"; echo $n
"""
FAKE_SQUEUE = """#!/bin/bash
# fake squeue -h -j ID -o %T: the job's state while it is queued, nothing once it has left the queue
while [ $# -gt 0 ]; do case $1 in -j) id=$2; shift 2;; *) shift;; esac; done
[ -f "$FAKE_SLURM/queue/$id" ] && cat "$FAKE_SLURM/queue/$id"; exit 0
"""
FAKE_SCONTROL = """#!/bin/bash
# fake scontrol requeue ID: recorded, the job queued again
echo "$*" >> "$FAKE_SLURM/scontrol.log"; echo PENDING > "$FAKE_SLURM/queue/$2"
"""


def paper_files(root: Path) -> tuple[Path, dict[str, str]]:
    model = testing.write_paper_model(root / "model")
    return model, testing.write_paper_data(root / "data")


def local_overrides(root: Path, model: Path, data: dict[str, str]) -> list[str]:
    """Local copies for every model and dataset (one list serves every run of a table), and where runs write."""
    return [*(f"local_models.{m}={model}" for m in ("llama3_8b", "mistral_7b", "llama32_3b")),
            f"local_data.gsm8k_train={data['gsm8k']}", f"local_data.gsm8k_test={data['gsm8k']}",
            f"local_data.alpaca={data['alpaca']}", f"local_data.code_alpaca={data['code_alpaca']}",
            f"local_data.saferpaca={data['saferpaca']}", f"local_data.hexphi={data['hexphi']}",
            f"local_data.mmlu={data['mmlu']}", f"local_data.cqa={data['cqa']}",
            f"output_root={root / 'runs'}", f"results_dir={root / 'results'}"]


# The budget of a simulated run: user-level overrides only (none changes what a shipped file says).
SMALL = ["train.max_steps=2", "eval.limit=2", "eval.humaneval_problems=1"]


def fake_slurm(root: Path) -> dict:
    """An environment whose PATH starts with fake sbatch/squeue/scontrol keeping their state under ``root``."""
    bin_dir = root / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name, text in (("sbatch", FAKE_SBATCH), ("squeue", FAKE_SQUEUE), ("scontrol", FAKE_SCONTROL)):
        f = bin_dir / name
        f.write_text(text)
        f.chmod(f.stat().st_mode | stat.S_IEXEC)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_SLURM": str(root)}
