"""The processes of a run: Accelerate (and DeepSpeed) set up for its batch sizes, ranks, barriers, the tracker, and
the teardown after training (so that scoring runs as one plain process).

wandb, optional, is imported only when a run asks for it (``train.wandb``).
"""

from __future__ import annotations

import os
from datetime import timedelta

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from accelerate.utils import InitProcessGroupKwargs
from omegaconf import DictConfig
from transformers.integrations import unset_hf_deepspeed_config

from ..config import per_method
from ..errors import ConfigError
from ..models import precision

# Process-group timeout: rank 0 may cluster PMRC (uncached) or save a large model while the others wait.
PROCESS_GROUP_TIMEOUT_S = 3 * 3600


def accelerator_for(cfg: DictConfig):
    """(accelerator, processes, rank, gradient accumulation steps) for the run's batch sizes."""
    tc = cfg.train
    used = precision.resolve(tc.mixed_precision)
    _fresh_state_for(used)
    accelerator = Accelerator(mixed_precision=used, log_with=tracker(cfg),
                              kwargs_handlers=[InitProcessGroupKwargs(timeout=timedelta(seconds=PROCESS_GROUP_TIMEOUT_S))])
    rank, nproc = rank_world()  # Accelerate reports 1 process for DeepSpeed on CPU (gloo); the group knows the truth
    if tc.batch_size % (tc.micro_batch_size * nproc):
        raise ConfigError(
            f"train.batch_size={tc.batch_size} must be a multiple of micro_batch_size×processes = "
            f"{tc.micro_batch_size}×{nproc}; change train.micro_batch_size."
        )
    accum = tc.batch_size // (tc.micro_batch_size * nproc)
    accelerator.gradient_accumulation_steps = accum  # accelerator.accumulate() steps every `accum` micro-batches
    if accelerator.state.deepspeed_plugin is not None:  # DeepSpeed accumulates itself: give it the same numbers
        plugin = accelerator.state.deepspeed_plugin
        plugin.deepspeed_config.update({"gradient_accumulation_steps": accum, "train_batch_size": tc.batch_size,
                                        "train_micro_batch_size_per_gpu": tc.micro_batch_size})
        if tc.max_grad_norm:
            plugin.deepspeed_config["gradient_clipping"] = float(tc.max_grad_norm)
        if per_method(cfg, "optimizer_offload", False):  # the memory plan's choice (configs/scale/paper.yaml)
            plugin.deepspeed_config["zero_optimization"]["offload_optimizer"] = {"device": "cpu", "pin_memory": True}
            plugin.deepspeed_config["zero_force_ds_cpu_optimizer"] = False  # torch's AdamW steps on the CPU copy
    return accelerator, nproc, rank, accum


def _fresh_state_for(mixed_precision: str) -> None:
    """Accelerate keeps one state per process and refuses a second precision in it; a process that trains runs of
    different precisions one after another (tests, scripts) starts the next from a fresh state. The process group
    (Accelerate's PartialState) is kept."""
    shared = AcceleratorState._shared_state
    if shared and shared.get("_mixed_precision") != mixed_precision:
        AcceleratorState._reset_state()


def offloaded(accelerator) -> bool:
    plugin = accelerator.state.deepspeed_plugin
    return plugin is not None and "offload_optimizer" in plugin.deepspeed_config.get("zero_optimization", {})


def zero_stage(accelerator) -> int | None:
    plugin = accelerator.state.deepspeed_plugin
    return None if plugin is None else int(plugin.zero_stage)


def barrier() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()


def rank_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def launcher_rank_world() -> tuple[int, int]:
    """(rank, processes) as a launcher set them in the environment, for work done before any process group starts."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def teardown(accelerator) -> None:
    """After training: finish the trackers, drop the engine and optimizer (their GPU memory), and end the process
    group on every rank, so that what follows (scoring on rank 0) runs as one plain process."""
    for t in accelerator.trackers:
        t.finish()
    accelerator.free_memory()
    unset_hf_deepspeed_config()  # else from_pretrained would build the saved model under ZeRO-3's zero.Init again
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


def tracker(cfg) -> str | None:
    """wandb when asked for and installed; offline unless WANDB_MODE says otherwise (no account needed)."""
    if not cfg.train.wandb:
        return None
    try:
        import wandb  # noqa: F401  (optional: only its presence is checked)
    except ImportError:
        return None
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")
    return "wandb"
