"""Training checkpoints that survive being killed at any moment, and exact resume.

A checkpoint is a directory ``<run>/checkpoints/step-<N>/``. It is written under a temporary name and renamed
into place only when every file in it is complete (a directory rename is atomic on POSIX), so a run killed
while saving leaves a ``*.tmp*`` directory that resume ignores and removes, never a half-written checkpoint.
``meta.json`` is written last inside it and lists the files with their sizes; a checkpoint whose files do not
match is skipped (with a warning) in favour of an older complete one.

Contents (``save_state`` / ``load_state``): the trainable weights only (adapters; every weight for full fine-tuning),
optimizer and scheduler state, the RNG states of every process (python, numpy, torch, cuda), the step, the loss
history, the dev curve and the run identity that wrote it (``config.json``: resume refuses another config's). With
DeepSpeed the engine's own ``save_state`` layout is used inside the same directory protocol.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import warnings
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError
from ..files import atomic_write_json
from ..results import run_identity
from .distributed import barrier

META = "meta.json"
CONFIG = "config.json"  # the run identity of the run that wrote a checkpoint
# Fault injection for the kill-and-resume tests: ``IDLORA_FAULT_KILL_IN_SAVE=<step>`` makes the process SIGKILL
# itself while checkpoint <step> is half written (its files are in the temporary directory, no meta.json yet).
FAULT_ENV = "IDLORA_FAULT_KILL_IN_SAVE"


def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def trainable_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


def checkpoint_dirs(root: Path) -> list[Path]:
    """Complete checkpoints under ``root``, newest first."""
    if not root.exists():
        return []
    found = []
    for d in root.iterdir():
        if d.is_dir() and d.name.startswith("step-") and ".tmp" not in d.name and (d / META).exists():
            try:
                found.append((int(d.name.split("-")[1]), d))
            except ValueError:
                continue
    return [d for _, d in sorted(found, reverse=True)]


def is_complete(ckpt: Path) -> bool:
    try:
        meta = json.loads((ckpt / META).read_text())
        return all((ckpt / f).exists() and (ckpt / f).stat().st_size == size for f, size in meta["files"].items())
    except (OSError, ValueError, KeyError):
        return False


def remove_partial(root: Path) -> None:
    """Remove directories left by a save that was interrupted (they were never renamed into place)."""
    if root.exists():
        for d in root.iterdir():
            if d.is_dir() and ".tmp" in d.name:
                shutil.rmtree(d, ignore_errors=True)


def save(root: Path, step: int, write_files, rank: int = 0, world_size: int = 1, barrier=lambda: None,
         keep: int = 2) -> Path:
    """Write checkpoint ``step`` with ``write_files(tmp_dir)`` (called on every rank), then publish it atomically.

    ``write_files`` writes into the temporary directory; rank 0 then writes ``meta.json`` (the file list with
    sizes) and renames the directory into place. Older checkpoints beyond ``keep`` are deleted afterwards."""
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step}"
    tmp = root / f"step-{step}.tmp"
    if rank == 0:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
    barrier()
    write_files(tmp)
    if os.environ.get(FAULT_ENV) == str(step):
        os.kill(os.getpid(), signal.SIGKILL)
    barrier()
    if rank == 0:
        files = {str(p.relative_to(tmp)): p.stat().st_size for p in sorted(tmp.rglob("*")) if p.is_file()}
        atomic_write_json(tmp / META, {"step": step, "files": files, "world_size": world_size})
        _fsync_dir(tmp)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        _fsync_dir(root)
        for old in checkpoint_dirs(root)[keep:]:
            shutil.rmtree(old, ignore_errors=True)
    barrier()
    return final


def latest(root: Path) -> Path | None:
    """The newest complete checkpoint, skipping (and saying so) any that fails its size check."""
    remove_partial(root)
    for ckpt in checkpoint_dirs(root):
        if is_complete(ckpt):
            return ckpt
        warnings.warn(f"checkpoint {ckpt} is incomplete or corrupt; skipping it")
    return None


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def saved_identity(ckpt: Path) -> dict | None:
    """The run identity a checkpoint records (None if it records none)."""
    path = ckpt / CONFIG
    return json.loads(path.read_text()) if path.exists() else None


def save_state(root: Path, step: int, losses: list, state, keep: int) -> None:
    """A checkpoint of the trainable state only (``state``: the loop's ``TrainState``): adapters and their optimizer
    state (every weight for fft). Under DeepSpeed the engine's own layout, without the frozen base
    (``exclude_frozen_parameters``: a ZeRO-2 checkpoint of an 8B adapter run would otherwise hold the 16 GB base)."""
    rank = state.rank

    def write(tmp: Path) -> None:
        if rank == 0:
            (tmp / CONFIG).write_text(json.dumps(run_identity(state.config)))
        torch.save(rng_state(), tmp / f"rng-{rank}.pt")
        if state.deepspeed:
            state.accelerator.save_state(str(tmp / "engine"), exclude_frozen_parameters=True)
        elif rank == 0:
            unwrapped = state.accelerator.unwrap_model(state.model)
            torch.save({"step": step, "trainable": trainable_state_dict(unwrapped),
                        "optimizer": state.optimizer.state_dict()}, tmp / "state.pt")
        if rank == 0:
            torch.save(state.scheduler.state_dict(), tmp / "scheduler.pt")
            (tmp / "losses.json").write_text(json.dumps(losses))
            (tmp / "dev.json").write_text(json.dumps(state.dev_curve))

    save(root, step, write, rank=rank, world_size=state.nproc, barrier=barrier, keep=keep)


def load_state(path: Path, state) -> tuple[int, list]:
    """Restore checkpoint ``path`` into ``state`` (weights, optimizer, scheduler, dev curve, this rank's RNG);
    returns (step, loss history up to it)."""
    losses = json.loads((path / "losses.json").read_text())
    step = int(path.name.split("-")[1])
    if state.deepspeed:  # the frozen base is not in the checkpoint: it comes from the model as loaded
        state.accelerator.load_state(str(path / "engine"), load_module_strict=False)
    else:
        saved = torch.load(path / "state.pt", map_location="cpu", weights_only=False)
        unwrapped = state.accelerator.unwrap_model(state.model)
        missing = [n for n, p in unwrapped.named_parameters() if p.requires_grad and n not in saved["trainable"]]
        if missing:
            raise ConfigError(f"checkpoint {path} does not match this run's trainable weights (e.g. {missing[0]}); "
                              "it was written by another config. Resume with the same config or start over.")
        with torch.no_grad():
            for n, p in unwrapped.named_parameters():
                if p.requires_grad:
                    p.copy_(saved["trainable"][n])
        state.optimizer.load_state_dict(saved["optimizer"])
    state.scheduler.load_state_dict(torch.load(path / "scheduler.pt", map_location="cpu", weights_only=False))
    dev_file = path / "dev.json"
    state.dev_curve = [p for p in json.loads(dev_file.read_text()) if p["step"] <= step] if dev_file.exists() else []
    rng_file = path / f"rng-{state.rank}.pt"
    if rng_file.exists():
        set_rng_state(torch.load(rng_file, map_location="cpu", weights_only=False))
    return step, losses[:step]
