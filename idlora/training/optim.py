"""The optimizer and the learning-rate schedule of a run, as ``cfg.train`` names them.

    check(cfg.train)                                           # before any work: unknown names are one clear error
    optimizer, scheduler = build(cfg.train, params, lr, horizon(cfg.train, total_steps), optimizer=own)

``own`` is a method recipe's optimizer (``training.recipes``: LoRA-FA's), or None for ``train.optimizer``'s.
"""

from __future__ import annotations

import torch

from ..errors import ConfigError

OPTIMIZERS = {"adamw": torch.optim.AdamW}
SCHEDULERS = ("linear", "constant")


def check(tc) -> None:
    """``train``'s flags, optimizer and scheduler names."""
    for key in ("packing", "dev_loss"):
        if not isinstance(tc.get(key), bool):
            raise ConfigError(f"train.{key}={tc.get(key)!r} is not valid; give true or false (train.{key}=true).")
    if tc.optimizer not in OPTIMIZERS:
        raise ConfigError(f"train.optimizer={tc.optimizer!r} is not known; valid: {', '.join(OPTIMIZERS)}.")
    if tc.lr_scheduler not in SCHEDULERS:
        raise ConfigError(f"train.lr_scheduler={tc.lr_scheduler!r} is not known; valid: {', '.join(SCHEDULERS)}.")


def horizon(tc, total_steps: int) -> int:
    """The lr schedule's length: ``train.schedule_steps``, or the run's own steps when null. A longer horizon stops
    the run part-way down its decay, exactly where a run of ``schedule_steps`` steps passes step ``total_steps`` (the
    data order does not depend on the length either): the fair protocol's final runs stop at the checkpoint that dev
    chose from a tuning run's curve (docs/protocol.md)."""
    steps = tc.get("schedule_steps") or total_steps
    if steps < total_steps:
        raise ConfigError(f"train.schedule_steps={steps} is shorter than the run's {total_steps} steps; give at "
                          f"least {total_steps}, or null for the run's own length.")
    return int(steps)


def build(tc, params, lr: float, total_steps: int, optimizer=None):
    """(optimizer, scheduler) as the config names them (or ``optimizer``, a method recipe's own, e.g. LoRA-FA's):
    linear warm-up, then linear decay to 0 (HF's "linear") or a constant lr (HF's "constant_with_warmup")."""
    if optimizer is None:
        optimizer = OPTIMIZERS[tc.optimizer](params, lr=lr, betas=tuple(tc.betas), weight_decay=tc.weight_decay)
    warmup, decay = int(tc.warmup_steps), tc.lr_scheduler == "linear"

    def lr_lambda(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup)) if decay else 1.0

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda)
