"""Launching many runs: locally one after another, or as Slurm jobs (``scripts/submit.py``).

A run is (experiment, method, overrides). Its id and results file come from the composed config, so a run
whose results file already exists and holds the same config is skipped: re-submitting after an interruption
launches only what is missing.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

from .config import compose
from .errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
SBATCH_TEMPLATE = REPO / "experiments" / "slurm" / "train.sbatch"
_COMPOSE_LOCK = threading.Lock()  # Hydra's compose API keeps global state: one composition at a time


@dataclass
class Run:
    experiment: str
    method: str
    overrides: list[str] = field(default_factory=list)
    scale: str = "mini"

    def args(self) -> list[str]:
        return [f"experiment={self.experiment}", f"method={self.method}", f"scale={self.scale}", *self.overrides]

    def config(self):
        with _COMPOSE_LOCK:
            return compose(self.args())


def is_complete(run: Run, results_dir: Path | None = None) -> bool:
    """True if the run's results file holds this config's training and every configured benchmark."""
    from omegaconf import OmegaConf

    from .results import usable_record

    cfg = run.config()
    path = Path(results_dir or cfg.results_dir) / f"{cfg.run_id}.json"
    return usable_record(path, OmegaConf.to_container(cfg, resolve=True), cfg.eval.benchmarks) is not None


def sbatch_script(run: Run, gpus: int = 2, cpus: int = 16, mem: str = "200G", time: str = "48:00:00",
                  accelerate_config: str | None = None, extra_sbatch: str = "") -> str:
    cfg = run.config()
    if accelerate_config is None:
        accelerate_config = "configs/accelerate/zero3.yaml" if run.method == "fft" else "configs/accelerate/zero2.yaml"
    return SBATCH_TEMPLATE.read_text().format(
        job_name=cfg.run_id, gpus=gpus, cpus=cpus, mem=mem, time=time, log_dir=str(REPO / "runs" / "slurm-logs"),
        repo=str(REPO), venv=str(REPO / ".venv"), accelerate_config=accelerate_config,
        overrides=" ".join(shlex.quote(a) for a in run.args()), extra_sbatch=extra_sbatch,
    )


def submit(runs: list[Run], dry_run: bool = False, **sbatch_kw) -> list[str]:
    """Write one sbatch script per missing run and submit it; returns the job ids (or script paths if dry)."""
    out = []
    script_dir = REPO / "runs" / "slurm-scripts"
    script_dir.mkdir(parents=True, exist_ok=True)
    (REPO / "runs" / "slurm-logs").mkdir(parents=True, exist_ok=True)
    for run in runs:
        if is_complete(run):
            print(f"skip {run.config().run_id}: results complete")
            continue
        script = script_dir / f"{run.config().run_id}.sbatch"
        script.write_text(sbatch_script(run, **sbatch_kw))
        if dry_run:
            out.append(str(script))
            continue
        try:
            res = subprocess.run(["sbatch", "--parsable", str(script)], capture_output=True, text=True, check=True)
        except FileNotFoundError:
            raise ConfigError("sbatch not found: CLUSTER=slurm needs a Slurm login node "
                              "(or use --dry-run to write the scripts).") from None
        except subprocess.CalledProcessError as e:
            raise ConfigError(f"sbatch refused {script}: {e.stderr.strip()}") from None
        out.append(res.stdout.strip())
        print(f"submitted {run.config().run_id}: job {res.stdout.strip()}")
    return out
