"""Method recipes: what a method needs from training beyond "apply the adapter, then train it".

Training asks ``recipe_for(cfg.method)`` at each point where a method may differ, and nowhere else names a method:

    out = recipe.train(cfg, plan, run, record)        # the run itself (base: the untrained model, nothing trains)
    recipe.before(cfg, run)                            # runs this one needs trained first (LoRI-S: its LoRI-D)
    lr = recipe.lr(cfg, effective_lr(cfg))             # the lr it trains at (LoRI-S: sparse_lr_multiplier x)
    prepared = recipe.prepare(cfg, model)              # after the adapter is applied: None, or a dict for the record
    optimizer = recipe.optimizer(cfg, model, lr, deepspeed=...)   # None: train.optimizer's

``prepare`` may change the model in place; what it returns is recorded in the run's summary under the method's name,
and its ``masked_entries`` (trainable parameters that never change) are left out of the trainable count. Every
method without a recipe of its own gets ``Recipe()``. Full fine-tuning needs none: it saves the whole model where
``results.run_paths`` says (``model/``), with the same ``save_pretrained`` as an adapter.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from accelerate.utils import set_seed
from omegaconf import DictConfig, OmegaConf
from peft.optimizers import create_lorafa_optimizer
from safetensors import safe_open

from ..config import effective_lr
from ..errors import ConfigError
from ..eval.dev import describe, dev_loss
from ..eval.evaluate import eval_device
from ..methods import BASE, apply_peft_config, count_parameters
from ..models import load_model_and_tokenizer, precision
from ..results import recorded_identity, run_identity, run_paths
from ..tuners.lori import magnitude_masks
from . import record
from .distributed import rank_world
from .setup import dev_records


class Recipe:
    """Apply, then train: nothing to prepare."""

    def train(self, cfg: DictConfig, plan, run: Callable, record_it: bool) -> dict:
        """The run: ``run(cfg, plan)``, the training loop. ``record_it``: whether a new results file is wanted (false
        when this config's record already exists; a trained run then trains again only if its weights are gone)."""
        return run(cfg, plan)

    def before(self, cfg: DictConfig, run: Callable[[DictConfig], dict]) -> None:
        """Train (with ``run``) the runs this one needs first, unless they are already recorded."""

    def lr(self, cfg: DictConfig, lr: float) -> float:
        """The lr the method trains at, given the scale's or experiment's (``config.effective_lr``)."""
        return lr

    def prepare(self, cfg: DictConfig, model) -> dict | None:
        return None

    def optimizer(self, cfg: DictConfig, model, lr: float, deepspeed: bool):
        """The method's own optimizer over ``model``'s trainable parameters at ``lr``, or None for the loop's."""
        return None


class BaseRecipe(Recipe):
    """``method=base``: the untrained model as a run (nothing trains, no adapter is saved), scored with the same
    protocol as the trained runs; its results file is written unless it exists (``record_it``); rank 0 alone."""

    def train(self, cfg: DictConfig, plan, run: Callable, record_it: bool) -> dict:
        rank = rank_world()[0]
        out = {"model": None, "tokenizer": None, "rank": rank, "preempted": False, "processes": 1}
        if rank != 0:
            return out
        t0 = time.time()
        model, tokenizer = load_model_and_tokenizer(cfg.model)
        model = apply_peft_config(model, cfg.method, None).to(eval_device()).eval()
        if record_it:
            curve = _base_dev_curve(cfg, model, tokenizer)  # before the clock is read: its seconds count
            summary = {"steps": 0, "lr": None, "examples": 0, "loss_curve": [], "final_loss": None,
                       "seconds": time.time() - t0, "processes": 1, "adapter_dir": None, "dev_curve": curve}
            record.write(cfg, plan.config, summary, trainable=0, total=count_parameters(model)[1])
        return {**out, "model": model, "tokenizer": tokenizer}


def _base_dev_curve(cfg: DictConfig, model, tokenizer) -> list[dict]:
    """The untrained model's dev loss as a one-point curve at step 0 (``train.dev_loss``), in the precision a run
    trains in: the reference of the fair protocol's validity gate (both arms must beat the base on dev)."""
    records = dev_records(cfg)
    if records is None:
        return []
    with precision.autocast(precision.resolve(cfg.train.mixed_precision, next(model.parameters()).device)):
        point = dev_loss(model, tokenizer, records, cfg.model.family, int(cfg.train.max_length))
    print(f"base: {describe(point)}")
    return [{"step": 0, **point}]


class LoRAFARecipe(Recipe):
    """LoRA-FA (Zhang et al., 2023; arXiv 2308.03303): LoRA with A frozen at its random init (``methods.apply_method``
    freezes it) and B trained by PEFT's LoRA-FA optimizer (``peft.optimizers.create_lorafa_optimizer``): AdamW on
    B's gradient projected as ``(alpha/r)^-2 g_B (A A^T)^-1``, the closest low-rank step to full fine-tuning's.

    PEFT's optimizer fixes betas (0.9, 0.999) and eps 1e-6, and pairs each ``lora_A`` with its ``lora_B`` by
    parameter names in one group of whole tensors: DeepSpeed's ZeRO optimizers replace the groups by flat partitions,
    so LoRA-FA runs without DeepSpeed (``configs/accelerate/ddp.yaml`` at paper scale, ``idlora.runs.launch``)."""

    def optimizer(self, cfg: DictConfig, model, lr: float, deepspeed: bool):
        tc = cfg.train
        if deepspeed:
            raise ConfigError("LoRA-FA's optimizer (PEFT's) steps whole tensors, which DeepSpeed's ZeRO partitions: "
                              "launch method=lorafa with configs/accelerate/ddp.yaml (or one process), not DeepSpeed.")
        if tc.optimizer != "adamw" or [float(b) for b in tc.betas] != [0.9, 0.999]:
            raise ConfigError(f"LoRA-FA's optimizer is PEFT's AdamW with betas (0.9, 0.999); got "
                              f"train.optimizer={tc.optimizer}, train.betas={list(tc.betas)}: set "
                              "train.optimizer=adamw train.betas=[0.9,0.999].")
        return create_lorafa_optimizer(model, r=int(cfg.method.r), lora_alpha=float(cfg.method.alpha), lr=lr,
                                       weight_decay=float(tc.weight_decay))


class LoRIRecipe(Recipe):
    """LoRI's two stages (Zhang et al., 2025): LoRI-S (``sparsity > 0``) trains B under model-wise magnitude masks
    taken from a trained dense LoRI-D of the same config (``sparsity=0``), at ``sparse_lr_multiplier`` times LoRI-D's
    lr. The dense run is trained first (or reused, if its adapter and results file match) under
    ``<run dir>/calibration``; LoRI-D itself (``sparsity=0``) needs nothing."""

    @staticmethod
    def _sparse(cfg: DictConfig) -> bool:
        return float(cfg.method.get("sparsity") or 0) > 0

    def lr(self, cfg: DictConfig, lr: float) -> float:
        return lr * float(cfg.method.get("sparse_lr_multiplier") or 1.0) if self._sparse(cfg) else lr

    def before(self, cfg: DictConfig, run: Callable[[DictConfig], dict]) -> None:
        if not self._sparse(cfg):
            return
        dense = self.dense_config(cfg)
        paths = run_paths(dense)
        if not ((paths.weights / "adapter_model.safetensors").exists()
                and recorded_identity(paths.results) == run_identity(OmegaConf.to_container(dense))):
            run(dense)

    def prepare(self, cfg: DictConfig, model) -> dict | None:
        if not self._sparse(cfg):
            return None
        paths = run_paths(self.dense_config(cfg))
        prefix, suffix = "base_model.model.", ".lori_B.weight"
        with safe_open(str(paths.weights / "adapter_model.safetensors"), framework="pt") as f:
            b = {key[len(prefix):-len(suffix)]: f.get_tensor(key) for key in f.keys() if key.endswith(suffix)}
        masks = magnitude_masks(b, float(cfg.method.sparsity))
        model.base_model.set_masks(masks)
        kept = sum(int(m.sum()) for m in masks.values())
        entries = sum(m.numel() for m in masks.values())
        set_seed(cfg.seed)  # LoRI-S draws the same dropout whether LoRI-D was just trained here or reused
        return {"calibration_run": str(paths.results), "mask_density": kept / entries, "masked_entries": entries - kept}

    @staticmethod
    def dense_config(cfg: DictConfig) -> DictConfig:
        """The LoRI-D run of a LoRI-S config: the same config at sparsity 0, filed under ``<run dir>/calibration``."""
        calibration = str(run_paths(cfg).out_dir / "calibration")
        dense = OmegaConf.to_container(cfg, resolve=True)
        dense["method"]["sparsity"] = 0.0
        dense.update(run_id=f"{cfg.run_id}.lori_d", output_root=calibration, results_dir=calibration,
                     evaluate_after_training=False)
        dense["train"]["wandb"] = False  # one tracker run per process: the LoRI-S run's (its curve is what is reported)
        return OmegaConf.create(dense)


RECIPES: dict[str, Recipe] = {BASE: BaseRecipe(), "lori": LoRIRecipe(), "lorafa": LoRAFARecipe()}


def recipe_for(method_cfg) -> Recipe:
    """The recipe of a method config (``cfg.method``): its own if it has one, else ``Recipe()``."""
    return RECIPES.get(method_cfg.name, Recipe())


def train_lr(cfg: DictConfig) -> float:
    """The lr run ``cfg`` trains at: the scale's or experiment's (``config.effective_lr``), as its method's recipe
    takes it (LoRI-S: ``sparse_lr_multiplier`` times that)."""
    return recipe_for(cfg.method).lr(cfg, effective_lr(cfg))
