"""The run record a training writes (``results/runs/<run_id>.json``, ``idlora.results``): the run's identity and
config, its parameter counts, and the training summary (``summary``)."""

from __future__ import annotations

from omegaconf import DictConfig

from ..models import precision
from ..results import new_run_record, run_paths, write_run_record
from .distributed import offloaded


def summary(state, cfg: DictConfig, *, steps: int, lr: float, examples: int, losses: list, seconds: float,
            accum: int) -> dict:
    """The training summary of a run (``record["train"]``), from the loop's state (``loop.TrainState``)."""
    tc = cfg.train
    return {"steps": steps, "lr": lr, "examples": examples, "loss_curve": losses,
            "final_loss": losses[-1] if losses else None, "seconds": seconds,
            "processes": state.nproc, "grad_accum": accum, "adapter_dir": str(run_paths(cfg).weights),
            "zero_stage": state.zero_stage, "gradient_checkpointing": bool(tc.gradient_checkpointing),
            "optimizer_offload": offloaded(state.accelerator),
            "precision": precision.decision(tc.mixed_precision, state.accelerator.device), "dev_curve": state.dev_curve}


def write(cfg: DictConfig, config: dict, train_summary: dict, trainable: int, total: int) -> None:
    """Write the run's results file: ``config`` (the resolved config as a dict) with the training summary."""
    record = new_run_record(run_id=cfg.run_id, experiment=cfg.experiment, scale=cfg.scale.name, model=cfg.paper_model,
                            method=cfg.method.name, config=config, trainable_params=trainable, total_params=total)
    record["train"] = train_summary
    record["base_model"] = cfg.model.name
    write_run_record(run_paths(cfg).results, record)
