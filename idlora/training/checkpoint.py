"""Training checkpoints that survive being killed at any moment, and exact resume.

A checkpoint is a directory ``<run>/checkpoints/step-<N>/``. It is written under a temporary name and renamed
into place only when every file in it is complete (a directory rename is atomic on POSIX), so a run killed
while saving leaves a ``*.tmp*`` directory that resume ignores and removes, never a half-written checkpoint.
``meta.json`` is written last inside it and lists the files with their sizes; a checkpoint whose files do not
match is skipped (with a warning) in favour of an older complete one.

Contents: the trainable weights only (adapters; every weight for full fine-tuning), optimizer and scheduler
state, the RNG states of every process (python, numpy, torch, cuda), the step and the loss history. With
DeepSpeed the engine's own ``save_state`` layout is used inside the same directory protocol.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import warnings
from pathlib import Path

import numpy as np
import torch

from ..files import atomic_write_json

META = "meta.json"
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
        import signal

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
