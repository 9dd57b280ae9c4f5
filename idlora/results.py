"""One run, one results file (docs/DESIGN.md §6): ``results/runs/<run_id>.json``.

The file holds the run's identity (``run_id``, ``experiment``, ``scale``, ``model``, ``method``), its resolved
``config``, ``trainable_params`` / ``total_params``, ``metrics`` (percent, keys of paper_numbers.json), the
training summary, ``benchmarks`` (per benchmark: metrics, seconds, error if it crashed, and the benchmark's
``info``: ``generation`` = new tokens, seconds, tokens/s of its decoding; HEx-PHI's ``data`` = prompts and
categories read) and ``provenance``.
Per-example scores go to a sidecar ``<run_id>.examples.json`` named by ``per_example_file`` (they are large:
HumanEval keeps every sample's pass/fail). Every write is atomic (temp file + rename) under a file lock, so a
crash mid-write leaves the previous file intact and two writers never interleave.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import socket
import subprocess
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from filelock import FileLock

from .errors import ConfigError
from .files import atomic_write_json, atomic_write_text

SCHEMA_VERSION = 1
PACKAGES = ("torch", "transformers", "peft", "accelerate", "datasets", "lm_eval", "deepspeed", "idlora")


# Keys of a run's config that say where files go, not what the run is: left out when configs are compared.
# (local_models / local_data only feed model.path, data.*path and eval.*_path, which stay in the identity.)
LOCATION_KEYS = ("output_root", "results_dir", "evaluate_after_training", "local_models", "local_data")


# Training keys that change how a run is executed or logged, never its numbers (resume is exact, bit for bit):
# `make tableN` trains with train.resume=true, and the table must still recognise the run.
# packing (issue 35) puts a micro-batch's examples in one row: the same tokens, loss mask and mean loss as padded rows
# (tests/test_packing.py: loss and gradients equal), so a run trained padded is the same run; dev_loss only scores.
EXECUTION_KEYS = ("resume", "retrain", "wandb", "log_steps", "keep_checkpoints", "save_steps", "packing", "dev_loss")


# Config keys added after runs were recorded, with the value that reproduces what those runs did: a key holding
# that value is left out of the identity, so a record written before the key existed still matches.
ADDED_KEYS = {("scale", "gradient_checkpointing"): {"default": False}, ("scale", "eval_batch_size"): 8,
              ("train", "schedule_steps"): None,  # the lr schedule's horizon (issue 36): null, the run's own steps
              ("method", "rb_parts"): 2,  # ID-LoRA's Rank Boosting factor: 2 is eq. 4, what every run before it did
              ("method", "impl"): "ours",  # whose forward (issue 19): ours is what every run before it did
              # PMRC's k-means restarts (issue 19): null, the backend's default, is what every run before it did
              ("method", "pmrc_restarts"): None, ("scale", "pmrc_restarts"): None,
              **{(group, key): value for group in ("scale", "eval") for key, value in
                 (("humaneval_set", "openai"), ("humaneval_max_new_tokens", None), ("hexphi_max_new_tokens", None),
                  ("mc_form", "letter"))}}
# The real-data task lists (scale.real_tasks, data.real_tasks, eval.real_tasks; docs/data.md) are read only when the
# group's source is `real`: elsewhere (every synthetic or hub run, all recorded before the lists existed) they are
# left out of the identity.
REAL_TASKS_KEYS = (("scale", "data_source"), ("data", "source"), ("eval", "source"))
# Config keys deleted since runs were recorded because nothing read them: left out of the identity either way.
# scale.dev_loss (the scale's default for train.dev_loss, an execution key) only scores: left out the same way.
REMOVED_KEYS = {("train", "num_workers"), ("scale", "dev_loss")}
# Config entries added with a method, after runs of other methods were recorded (issue 20's PEFT baselines: their
# ranks in scale.rank, VB-LoRA's bank shape scale.vblora). Only a run of that method reads them, so they are left
# out of the identity of every other method's run; a run of the method keeps them.
NEW_METHODS = ("vera", "vblora", "lorafa", "lily")
METHOD_ENTRIES = {**{("scale", "rank", m): m for m in NEW_METHODS}, ("scale", "vblora"): "vblora"}


def run_identity(config: dict) -> dict:
    """The part of a resolved config that defines a run (two runs with equal identities are the same run)."""
    out = {k: v for k, v in config.items() if k not in LOCATION_KEYS}
    if isinstance(out.get("train"), dict):
        out["train"] = {k: v for k, v in out["train"].items() if k not in EXECUTION_KEYS}
    for group, key in REMOVED_KEYS:
        if isinstance(out.get(group), dict) and key in out[group]:
            out[group] = {k: v for k, v in out[group].items() if k != key}
    for (group, key), default in ADDED_KEYS.items():
        if isinstance(out.get(group), dict) and out[group].get(key, default) == default:
            out[group] = {k: v for k, v in out[group].items() if k != key}
    for group, source_key in REAL_TASKS_KEYS:  # the real tasks matter only where a real source reads them
        if isinstance(out.get(group), dict) and out[group].get(source_key) != "real":
            out[group] = {k: v for k, v in out[group].items() if k != "real_tasks"}
    method = (config.get("method") or {}).get("name") if isinstance(config.get("method"), dict) else None
    for path, owner in METHOD_ENTRIES.items():
        if owner != method:
            out = _without(out, path)
    return out


# Methods whose training saves the whole model (``save_pretrained`` of the full model, marked by its config.json) in
# ``<run dir>/model``; every other method saves an adapter (adapter_config.json) in ``<run dir>/adapter``.
FULL_MODEL_METHODS = ("fft",)
# Where a retrain stages its run until it is complete (idlora.training.retrain), under results_dir and output_root.
STAGING = ".retrain"
# A file in the run's directory that asks a running training to checkpoint and stop at the next step (the Slurm job's
# warning-signal handler writes it: experiments/slurm/train.sbatch, ``$RUN_DIR/STOP``).
STOP_FILE = "STOP"


@dataclass(frozen=True)
class RunPaths:
    """Every file of one run, from its config: the one place that names them (``run_paths``)."""

    run_id: str
    results_dir: Path  # where the results file and its side files live
    output_root: Path  # where run directories live
    full_model: bool  # the weights are the whole model (FULL_MODEL_METHODS), not an adapter

    @property
    def out_dir(self) -> Path:
        """``<output_root>/<run_id>``: the weights, checkpoints and stop file of the run."""
        return self.output_root / self.run_id

    @property
    def weights(self) -> Path:
        """What training saves: ``model/`` (the whole model) or ``adapter/``."""
        return self.out_dir / ("model" if self.full_model else "adapter")

    @property
    def weights_marker(self) -> Path:
        """The file whose presence says the weights were saved (``save_pretrained`` writes it)."""
        return self.weights / ("config.json" if self.full_model else "adapter_config.json")

    @property
    def checkpoints(self) -> Path:
        return self.out_dir / "checkpoints"

    @property
    def stop(self) -> Path:
        return self.out_dir / STOP_FILE

    @property
    def results(self) -> Path:
        """``<results_dir>/<run_id>.json``: the run's record."""
        return record_path(self.results_dir, self.run_id)

    @property
    def diff(self) -> Path:
        """``<run_id>.diff`` beside the record: the uncommitted changes of a run made from a dirty tree."""
        return diff_path(self.results)

    @property
    def examples(self) -> Path:
        """``<run_id>.examples.json`` beside the record: the per-example scores."""
        return sidecar_path(self.results)

    @property
    def log(self) -> Path:
        """``<output_root>/logs/<run_id>.log``: the output of a run a launcher started in the background."""
        return self.output_root / "logs" / f"{self.run_id}.log"

    @property
    def launch_lock(self) -> Path:
        """``<results_dir>/.locks/<run_id>.lock``: held by a launcher while it trains the run (two table targets
        sharing a run train it once)."""
        return self.results_dir / ".locks" / f"{self.run_id}.lock"

    def staged(self) -> RunPaths:
        """The same run's paths in the retrain staging area (``<results_dir>/.retrain``, ``<output_root>/.retrain``)."""
        return RunPaths(self.run_id, self.results_dir / STAGING, self.output_root / STAGING, self.full_model)


def adapter_run(run_dir: str | Path) -> RunPaths:
    """The paths of an adapter run known only by its output directory (``<output_root>/<run_id>``), e.g. a
    directory a user passes to ``idlora.lm_eval``."""
    run_dir = Path(run_dir)
    return RunPaths(run_dir.name, run_dir.parent, run_dir.parent, full_model=False)


def record_path(results_dir: str | Path, run_id: str) -> Path:
    """``<results_dir>/<run_id>.json``: where run ``run_id``'s record lives (``RunPaths.results``), for a caller that
    has a run's id and its results directory but not its config."""
    return Path(results_dir) / f"{run_id}.json"


def run_paths(cfg: Mapping) -> RunPaths:
    """The files of the run configured by ``cfg`` (a run's config, DictConfig or dict: its ``run_id``,
    ``results_dir``, ``output_root`` and ``method.name``)."""
    method = cfg.get("method") or {}
    return RunPaths(run_id=str(cfg["run_id"]), results_dir=Path(cfg["results_dir"]),
                    output_root=Path(cfg["output_root"]), full_model=method.get("name") in FULL_MODEL_METHODS)


def _without(tree: dict, path: tuple[str, ...]) -> dict:
    """``tree`` without the entry at ``path`` (copies only the dicts on the path; the input is not changed)."""
    head, *rest = path
    if not isinstance(tree, dict) or head not in tree:
        return tree
    if not rest:
        return {k: v for k, v in tree.items() if k != head}
    return {**tree, head: _without(tree[head], tuple(rest))}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


CODE_PATHS = ("idlora", "scripts", "configs", "experiments", "claims", "pyproject.toml")  # what a run's numbers read


def _git(*args: str, ok=(0,)) -> str | None:
    """``git args`` in the repository's root: its output, or None without git or on an exit status not in ``ok``."""
    try:
        out = subprocess.run(["git", *args], cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True,
                             timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode in ok else None


def uncommitted_code() -> list[str] | None:
    """The files of ``CODE_PATHS`` that differ from HEAD, untracked ones included (``git status --porcelain``
    lines); None without git. Results, logs and anything else a run writes do not count."""
    out = _git("status", "--porcelain", "--", *CODE_PATHS)
    return None if out is None else out.splitlines()


def git_commit() -> str | None:
    """HEAD, with ``-dirty`` when the code a run reads differs from it (``uncommitted_code``); None without git."""
    head = _git("rev-parse", "HEAD")
    if not head:
        return None
    return head.strip() + ("-dirty" if uncommitted_code() else "")


def git_diff() -> str:
    """The uncommitted changes to the code a run reads (``CODE_PATHS``: ``git diff HEAD``, and each untracked file
    there as a new file), "" on a clean tree or without git: a run made from a dirty tree keeps them beside its
    results file (``write_run_record``), so its code can be replayed."""
    tracked = _git("diff", "HEAD", "--binary", "--", *CODE_PATHS) or ""
    untracked = (_git("ls-files", "--others", "--exclude-standard", "-z", "--", *CODE_PATHS) or "").split("\0")
    new = [_git("diff", "--no-index", "--binary", "--", "/dev/null", f, ok=(0, 1)) or "" for f in untracked if f]
    return tracked + "".join(new)


def provenance() -> dict:
    versions = {}
    for pkg in PACKAGES:
        try:
            versions[pkg] = version(pkg.replace("_", "-"))
        except PackageNotFoundError:
            versions[pkg] = None
    hw = {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
          "hostname": socket.gethostname()}
    try:
        import torch  # results files are read (reports, tables) where torch need not be installed

        hw["cuda"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        hw["torch_threads"] = torch.get_num_threads()
    except ImportError:  # pragma: no cover
        pass
    commit = git_commit()
    diff = git_diff() if commit and commit.endswith("-dirty") else ""
    return {"git_commit": commit, "packages": versions, "hardware": hw, "start": _now(), "end": None,
            "seconds": None, **({"git_diff": diff} if diff else {})}


def new_run_record(run_id: str, experiment: str, scale: str, model: str, method: str, config: dict,
                   trainable_params: int, total_params: int) -> dict:
    return {"schema_version": SCHEMA_VERSION, "run_id": run_id, "experiment": experiment, "scale": scale,
            "model": model, "method": method, "config": config, "trainable_params": int(trainable_params),
            "total_params": int(total_params), "metrics": {}, "benchmarks": {}, "per_example_file": None,
            "provenance": provenance()}


@contextmanager
def _locked(path: Path):
    locks = path.parent / ".locks"  # beside the results, out of the way (and out of git)
    locks.mkdir(parents=True, exist_ok=True)
    with FileLock(str(locks / (path.name + ".lock"))):
        yield


def write_run_record(path: str | Path, record: dict) -> Path:
    """Write a run's record; the uncommitted diff its provenance carries (``git_diff``) goes to ``<run_id>.diff``
    beside it, and the record keeps that file's name and sha256 (``git_diff_file``, ``git_diff_sha256``)."""
    path = Path(path)
    prov = record.get("provenance") or {}
    with _locked(path):
        if prov.get("git_diff"):
            text = prov.pop("git_diff")
            side = atomic_write_text(diff_path(path), text)
            prov.update(git_diff_file=side.name, git_diff_sha256=hashlib.sha256(text.encode()).hexdigest())
        return atomic_write_json(path, record)


def load_run(path: str | Path) -> dict:
    """A results file, checked: unreadable JSON or another schema version is a ``ConfigError`` naming the fix."""
    path = Path(path)
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"no results file {path}") from None
    except ValueError as e:
        raise ConfigError(f"results file {path} is not valid JSON ({e}); delete it and re-run the run.") from None
    if record.get("schema_version") != SCHEMA_VERSION:
        raise ConfigError(f"results file {path} has schema {record.get('schema_version')!r}, this version reads "
                          f"{SCHEMA_VERSION}; re-run it (or `make clean-results`).")
    return record


SIDECAR_SUFFIX = ".examples.json"


def record_files(results_dir: str | Path) -> list[Path]:
    """Every run record in ``results_dir`` (``<run_id>.json``, not their per-example side files), sorted."""
    return [p for p in sorted(Path(results_dir).glob("*.json")) if not p.name.endswith(SIDECAR_SUFFIX)]


def sidecar_path(path: Path) -> Path:
    """The per-example file beside a results file (``RunPaths.examples``)."""
    return path.with_name(path.stem + SIDECAR_SUFFIX)


def diff_path(path: Path) -> Path:
    """The uncommitted-diff file beside a results file (``RunPaths.diff``)."""
    return path.with_suffix(".diff")


ENTRY_KEYS = ("metrics", "seconds", "n", "finished", "error")


def update_metrics(path: str | Path, benchmark: str, metrics: dict, per_example: list, seconds: float,
                   error: str | None = None, info: dict | None = None) -> dict:
    """Merge one benchmark's metrics and per-example scores into the run's file (atomically, under a lock);
    ``info`` (e.g. ``{"generation": {"tokens", "seconds", "tokens_per_s"}}``) is kept beside the metrics."""
    path = Path(path)
    clash = sorted(set(info or {}) & set(ENTRY_KEYS))
    if clash:
        raise ValueError(f"benchmark info may not use the entry's own keys {clash}")
    with _locked(path):
        record = load_run(path)
        entry = {"metrics": metrics, "seconds": round(seconds, 3), "n": len(per_example), "finished": _now(),
                 **(info or {})}
        if error:
            entry["error"] = error
        record["benchmarks"][benchmark] = entry
        record["metrics"].update(metrics)
        if per_example:
            side = sidecar_path(path)
            examples = json.loads(side.read_text()) if side.exists() else {}
            examples[benchmark] = per_example
            atomic_write_json(side, examples, indent=None)
            record["per_example_file"] = side.name
        prov = record["provenance"]
        prov["end"] = _now()
        prov["seconds"] = round(sum(b.get("seconds", 0) for b in record["benchmarks"].values())
                                + record.get("train", {}).get("seconds", 0), 3)
        atomic_write_json(path, record)
    return record


def load_per_example(record: dict, benchmark: str, results_dir: str | Path) -> list[dict] | None:
    """The per-example scores of one benchmark of a run, or None if it has none."""
    name = record.get("per_example_file")
    if not name:
        return None
    side = Path(results_dir) / name
    if not side.exists():
        return None
    return json.loads(side.read_text()).get(benchmark)


def scored_benchmarks(record: dict) -> set[str]:
    """Benchmarks that finished without error."""
    return {b for b, e in record.get("benchmarks", {}).items() if "error" not in e}




def recorded_identity(path: str | Path) -> dict | None:
    """The run identity a results file records, or None if there is none (missing or unreadable: such a file is
    replaced atomically by the run)."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        previous = json.loads(path.read_text()).get("config")
    except (OSError, ValueError):
        return None
    return run_identity(previous) if previous else None


def check_record(path: str | Path, config: dict) -> tuple[dict | None, str | None]:
    """The one rule for "is the results file in ``path`` a record of a run of ``config``" (a resolved config, as a
    dict): readable, of this schema version, of the same run identity. ``(record, None)`` if so; ``(None, None)``
    if there is no file; ``(None, why not)`` otherwise. Tables read records through this alone (a partly scored run
    fills the cells it has); :func:`usable_record` adds that the run is finished."""
    path = Path(path)
    if not path.exists():
        return None, None
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        return None, f"{path.name}: unreadable ({e})"
    if record.get("schema_version") != SCHEMA_VERSION:
        return None, f"{path.name}: schema {record.get('schema_version')!r}, expected {SCHEMA_VERSION} — re-run it"
    if run_identity(record.get("config") or {}) != run_identity(config):
        return None, f"{path.name}: written by a different config — re-run it (make clean-results or delete it)"
    return record, None


def usable_record(path: str | Path, config: dict, benchmarks=()) -> dict | None:
    """The record in ``path`` if it is usable for a run of ``config`` (a resolved config, as a dict): a record of
    that run (:func:`check_record`) with its training recorded and every benchmark in ``benchmarks`` scored without
    error. None otherwise (missing, unreadable, another run, or unfinished)."""
    record, _ = check_record(path, config)
    if record is None or "train" not in record:
        return None
    return record if set(benchmarks) <= scored_benchmarks(record) else None
