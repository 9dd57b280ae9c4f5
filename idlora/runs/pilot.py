"""The real-data pilot (docs/data.md): does training move a 135M model on each real benchmark?

For each task, LoRA trained on the task's real train split and the untrained base, both scored on the task's
held-out real test split, one seed (0, which no final run uses). ``python scripts/pilot_real_data.py`` runs what
is missing (a complete results file is kept), then ``idlora.reports.pilot`` builds the summary from the files.
"""

from __future__ import annotations

import subprocess

from ..experiments import Run
from .launch import is_complete, train_command

RESULTS_DIR = "results/pilot/runs"
SEED = 0
# LoRA at the pilot recipe: r=8 (mini), lr 3e-4 with warm-up and linear decay, 120 steps of batch 8
COMMON = ["scale.data_source=real", "+scale.lr.lora=3e-4", "scale.max_steps=120", "scale.batch_size=8",
          "scale.micro_batch_size=8", "train.warmup_steps=12", "train.wandb=false", f"seed={SEED}",
          f"results_dir={RESULTS_DIR}", "output_root=runs/pilot"]
# task -> (experiment, data and eval overrides): every benchmark on its task's held-out real test split
TASKS = {
    "cqa": ("gsm8k_llama3", ["data=cqa", "eval=multitask", "eval.benchmarks=[cqa]", "eval.limit=500"]),
    "mmlu": ("gsm8k_llama3", ["data=mmlu", "eval=multitask", "eval.benchmarks=[mmlu]", "eval.limit=500"]),
    "gsm8k": ("gsm8k_llama3", ["scale.real_tasks=[gsm8k]", "eval.limit=150", "eval.max_new_tokens=256"]),
    "code": ("code_llama3", ["scale.real_tasks=[code]", "eval.benchmarks=[mbpp,humaneval]", "eval.humaneval_set=openai",
                             "eval.humaneval_problems=80",
                             "eval.humaneval_samples=1", "eval.humaneval_temperature=0.0",
                             "eval.humaneval_max_new_tokens=192"]),
    "safety": ("safety_llama3", ["scale.real_tasks=[safety]", "eval.limit=150"]),
}
METHODS = ("base", "lora")


def pilot_runs(tasks=tuple(TASKS)) -> list[Run]:
    return [Run(TASKS[t][0], m, [*COMMON, *TASKS[t][1], f"run_tag=_pilot_{t}"], row=f"{t}/{m}")
            for t in tasks for m in METHODS]


def run_pilot(tasks=tuple(TASKS)) -> list[Run]:
    """Train and score every pilot run whose complete results file is missing; returns the runs."""
    runs = pilot_runs(tasks)
    for run in runs:
        if is_complete(run):
            print(f"{run.row}: complete, kept")
            continue
        print(f"{run.row}: " + " ".join(run.args()))
        subprocess.run(train_command(run), check=True)
    return runs
