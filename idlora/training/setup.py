"""What a run needs before its first step, cheapest first: every check that needs no weights (``validate``), then
the data (``examples``, ``dev_records``), then the model with its method applied (``build_model``).

``validate`` builds the method's PEFT config once (``Plan.peft_config``); the meta-device check and the real build
apply copies of it. It also turns the config into the dict the results file records, once (``Plan.config``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from transformers import AutoConfig

from ..data import check_data_config, load_dev_for, tokenize_example
from ..errors import ConfigError
from ..eval.evaluate import check_eval_config
from ..methods import apply_peft_config, build_peft_config
from ..models import load_model_and_tokenizer, precision
from ..models.meta import HF_CONFIG_DIR, meta_from_config, meta_model
from ..results import recorded_identity, run_identity, run_paths
from . import checkpoint, optim
from .distributed import barrier


@dataclass
class Plan:
    """A validated run: its config as a dict (what the results file records) and its method's PEFT config (None for
    fft and base), built once."""

    config: dict
    peft_config: object | None


def validate(cfg: DictConfig) -> Plan:
    """Every check that needs no weights, before any work: the method, the benchmarks and their data sources, the
    training data's files, the optimizer, and an earlier results file or checkpoint of the same run id."""
    config = OmegaConf.to_container(cfg, resolve=True)
    peft_config = build_peft_config(cfg.method)  # a bad method value fails before anything else
    if cfg.get("evaluate_after_training") and cfg.eval.benchmarks:
        check_eval_config(cfg.eval)  # so does a misspelt benchmark or a missing test set, before hours of training
    check_data_config(cfg.data, cfg.scale.name)
    optim.check(cfg.train)
    precision.check(cfg.train.mixed_precision)
    paths = run_paths(cfg)
    if not cfg.train.resume:
        _check_previous_results(paths.results, config)
    else:
        _check_checkpoint_config(paths.checkpoints, config)
    plan = Plan(config, peft_config)
    model = _meta_model(cfg)
    if model is not None:
        apply_peft_config(model, cfg.method, _copy(plan))
    return plan


def _copy(plan: Plan):
    """A fresh copy of the run's PEFT config for one model (PEFT keeps and may change the config it is given)."""
    return copy.deepcopy(plan.peft_config)


def _meta_model(cfg: DictConfig):
    """The run's model on the meta device (no weights), to build the adapter on first: a wrong target, k*r > d_out or
    an odd d_out with Rank Boosting fails here, before any weight is loaded or any data is read. Its shape comes from
    a local copy's config.json, the shipped ``configs/hf/<name>/config.json`` (no download), or the tiny model
    itself; None for an unknown local model (the real build checks the same things right after loading)."""
    local = cfg.model.get("path")
    if local and (Path(local) / "config.json").exists():  # a local copy: its own shapes
        return meta_from_config(AutoConfig.from_pretrained(local))
    if (HF_CONFIG_DIR / cfg.model.name / "config.json").exists():
        return meta_model(cfg.model.name)
    if cfg.model.source == "tiny":
        return meta_from_config(load_model_and_tokenizer(cfg.model)[0].config)
    return None


def config_diff(a: dict, b: dict, prefix: str = "") -> list[str]:
    """Dotted keys where two nested configs differ."""
    out = []
    for k in sorted(set(a) | set(b), key=str):
        x, y = a.get(k), b.get(k)
        if isinstance(x, dict) and isinstance(y, dict):
            out += config_diff(x, y, f"{prefix}{k}.")
        elif x != y:
            out.append(f"{prefix}{k}")
    return out


def _check_previous_results(path: Path, config: dict) -> None:
    previous, config = recorded_identity(path), run_identity(config)
    if previous is not None and previous != config:
        diff = config_diff(previous, config)
        raise ConfigError(
            f"{path} already holds run {path.stem!r} with a different config (differs in: {', '.join(diff)}). "
            "Give this run its own id with run_tag=_<name>, or delete that file to replace it."
        )


def _check_checkpoint_config(ckpt_root: Path, config: dict) -> None:
    """Resume only from a checkpoint written by this run's config: its optimizer state carries the old lr and
    its weights the old method, so a stale one would silently continue another experiment."""
    found = checkpoint.latest(ckpt_root)
    if found is None:
        return
    saved = checkpoint.saved_identity(found)
    if saved != run_identity(config):
        why = (f"differs in: {', '.join(config_diff(saved, run_identity(config))[:6])}" if saved is not None
               else "it records no config")
        raise ConfigError(f"checkpoint {found} was written by another config ({why}); resuming would continue that "
                          f"run. Delete {ckpt_root} to start this run afresh, or give it its own id with run_tag=_<name>.")


def build_model(cfg: DictConfig, plan: Plan, rank: int):
    """(model, tokenizer): base weights, the method (PMRC on rank 0 first; the other ranks then read its cache),
    gradient checkpointing. The method's recipe prepares it afterwards (``recipes``: LoRI's masks)."""
    model, tokenizer = load_model_and_tokenizer(cfg.model)
    if rank != 0:
        barrier()  # rank 0 clusters and caches first; the others then read its files
    model = apply_peft_config(model, cfg.method, _copy(plan))
    if rank == 0:
        barrier()
    if cfg.train.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        if hasattr(model, "enable_input_require_grads"):
            model.enable_input_require_grads()
    return model, tokenizer


def examples(cfg: DictConfig, records: list[dict], tokenizer) -> list[dict]:
    """The training records tokenized (those too long dropped); at least one batch of them."""
    tc = cfg.train
    out = [tokenize_example(r, tokenizer, cfg.model.family, tc.max_length) for r in records]
    out = [e for e in out if e is not None]
    if len(out) < tc.batch_size:
        raise ConfigError(f"only {len(out)} usable training examples for batch_size={tc.batch_size}; "
                          "supply more data or lower train.batch_size.")
    return out


def dev_records(cfg: DictConfig) -> list[dict] | None:
    """The run's held-out dev items when ``train.dev_loss`` is on (``idlora.data.load_dev_for``), else None."""
    if not cfg.train.dev_loss:
        return None
    records = load_dev_for(cfg.data, scale=cfg.scale.name, seed=cfg.seed)
    if not records:
        raise ConfigError(f"train.dev_loss=true but data {cfg.data.name!r} has no held-out dev items at scale "
                          f"{cfg.scale.name}; set train.dev_loss=false.")
    return records
