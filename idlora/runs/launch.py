"""Launching many runs: locally one after another, or as Slurm jobs (``scripts/submit.py``).

A run is (experiment, method, overrides): ``experiments.Run``. Its id and results file come from the composed
config, so a run whose results file already exists and holds the same config is skipped: re-submitting after an
interruption launches only what is missing.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

from omegaconf import OmegaConf

from ..errors import ConfigError
from ..experiments import Run
from ..methods import needs_pmrc
from ..results import record_path, uncommitted_code, usable_record

REPO = Path(__file__).resolve().parents[2]
SBATCH_TEMPLATE = REPO / "experiments" / "slurm" / "train.sbatch"


def is_complete(run: Run, results_dir: Path | None = None) -> bool:
    """True if the run's results file holds this config's training and every configured benchmark."""
    cfg = run.config()
    path = record_path(results_dir or cfg.results_dir, cfg.run_id)
    return usable_record(path, OmegaConf.to_container(cfg, resolve=True), cfg.eval.benchmarks) is not None


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


# The shipped Accelerate file per method where it is not ZeRO-2's: ZeRO-3 for full fine-tuning (the weights must be
# sharded to fit), plain data parallel for LoRA-FA (PEFT's LoRA-FA optimizer steps whole tensors, which ZeRO
# partitions; training/recipes.py).
ACCELERATE_FILES = {"fft": "configs/accelerate/zero3.yaml", "lorafa": "configs/accelerate/ddp.yaml"}


def accelerate_config(method: str) -> str:
    """The shipped Accelerate file a paper-scale run of ``method`` launches with: ``ACCELERATE_FILES``, else ZeRO-2
    (every other adapter; see ``make memory_plan``)."""
    return ACCELERATE_FILES.get(method, "configs/accelerate/zero2.yaml")


def train_command(run: Run, launcher: list[str] | None = None) -> list[str]:
    """The command that trains and scores ``run``: ``scripts/train.py`` under ``launcher`` (e.g. accelerate)."""
    return [*(launcher or [sys.executable]), str(REPO / "scripts" / "train.py"), *run.args(), "train.resume=true"]


def accelerate_launcher(run: Run) -> list[str]:
    """``accelerate launch`` with the method's shipped config (its num_processes: the paper's 2 GPUs)."""
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
            str(REPO / accelerate_config(run.method))]


def pmrc_command(run: Run) -> list[str] | None:
    """The single-process PMRC step a run needs first (``scripts/pmrc.py``), or None for a method without PMRC."""
    if not needs_pmrc(run.config().method):
        return None
    return [sys.executable, str(REPO / "scripts" / "pmrc.py"), *run.args()]


# sbatch resources: slurm.<key>=value on submit.py or make tableN CLUSTER=slurm ARGS="...".
SLURM_DEFAULTS = {"gpus": 2, "cpus": 16, "mem": "200G", "time": "48:00:00", "partition": None, "account": None,
                  "qos": None, "extra": ""}


def slurm_options(values: dict) -> dict:
    unknown = sorted(set(values) - set(SLURM_DEFAULTS))
    if unknown:
        raise ConfigError(f"unknown Slurm option(s) {', '.join('slurm.' + u for u in unknown)}; valid: "
                          f"{', '.join('slurm.' + k for k in SLURM_DEFAULTS)}")
    return {**SLURM_DEFAULTS, **values}


def sbatch_script(run: Run, slurm: dict | None = None) -> str:
    opts = slurm_options(slurm or {})
    cfg = run.config()
    lines = [f"#SBATCH --{k}={opts[k]}" for k in ("partition", "account", "qos") if opts[k]]
    lines += [opts["extra"]] if opts["extra"] else []
    args = run.args()
    pmrc = pmrc_command(run)
    return SBATCH_TEMPLATE.read_text().format(
        job_name=cfg.run_id, gpus=opts["gpus"], cpus=opts["cpus"], mem=opts["mem"], time=opts["time"],
        log_dir=str(slurm_dir(cfg, "logs")), repo=str(REPO), venv=str(REPO / ".venv"),
        accelerate_config=accelerate_config(run.method), overrides=" ".join(shlex.quote(a) for a in args),
        extra_sbatch="\n".join(lines), run_dir=shlex.quote(str(_root(cfg) / cfg.run_id)),
        pmrc_step=("python scripts/pmrc.py " + " ".join(shlex.quote(a) for a in args)) if pmrc else "",
    )


def _root(cfg) -> Path:
    return (REPO / cfg.output_root).resolve()  # output_root is relative to the repository, where jobs run


def slurm_dir(cfg, kind: str) -> Path:
    """``<output_root>/slurm-<kind>``: ``scripts`` (one sbatch file per run), ``logs``, ``jobs`` (``<run_id>.job``
    holds the id of the job submitted for the run)."""
    return _root(cfg) / f"slurm-{kind}"


LIVE_STATES = {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED",
               "RESIZING", "SUSPENDED", "STAGE_OUT", "SIGNALING"}


def live_job(cfg) -> str | None:
    """The id of a queued or running job already submitted for the run (its marker checked against squeue)."""
    marker = slurm_dir(cfg, "jobs") / f"{cfg.run_id}.job"
    if not marker.exists():
        return None
    job = marker.read_text().strip()
    try:
        res = subprocess.run(["squeue", "-h", "-j", job, "-o", "%T"], capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise ConfigError("squeue not found: CLUSTER=slurm needs a Slurm login node.") from None
    states = set(res.stdout.split())
    return job if states & LIVE_STATES else None


def submit(runs: list[Run], dry_run: bool = False, slurm: dict | None = None) -> list[str]:
    """Write one sbatch script per run that is neither complete nor queued/running, and submit it; returns the job
    ids (or the script paths if ``dry_run``)."""
    out = []
    for run in runs:
        cfg = run.config()
        run_id = cfg.run_id
        if is_complete(run):
            print(f"skip {run_id}: results complete")
            continue
        job = None if dry_run else live_job(cfg)
        if job is not None:
            print(f"skip {run_id}: job {job} is queued or running")
            continue
        for kind in ("scripts", "logs", "jobs"):
            slurm_dir(cfg, kind).mkdir(parents=True, exist_ok=True)
        script = slurm_dir(cfg, "scripts") / f"{run_id}.sbatch"
        script.write_text(sbatch_script(run, slurm))
        if dry_run:
            out.append(str(script))
            continue
        job = _sbatch(script)
        (slurm_dir(cfg, "jobs") / f"{run_id}.job").write_text(job + "\n")
        out.append(job)
        print(f"submitted {run_id}: job {job}")
    return out


def _sbatch(script: Path) -> str:
    try:
        res = subprocess.run(["sbatch", "--parsable", str(script)], capture_output=True, text=True, check=True)
    except FileNotFoundError:
        raise ConfigError("sbatch not found: CLUSTER=slurm needs a Slurm login node "
                          "(or use dry_run=true to write the scripts).") from None
    except subprocess.CalledProcessError as e:
        raise ConfigError(f"sbatch refused {script}: {e.stderr.strip()}") from None
    return res.stdout.strip().split(";")[0]
