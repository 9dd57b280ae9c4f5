"""Method recipes: what a method needs from training beyond "apply the adapter, then train it".

The training loop asks ``recipe_for(cfg.method)`` once, after the adapter is applied and before the first step:

    prepared = recipe_for(cfg.method).prepare(cfg, model, train=run)   # None, or a dict for the results file

``prepare`` may change the model in place; what it returns is recorded in the run's summary under the method's name,
and its ``masked_entries`` (trainable parameters that never change) are left out of the trainable count. ``train`` is
the loop's own entry point, for a recipe that first trains another run (LoRI-S trains a LoRI-D to find its masks).
Then the loop asks the recipe for its optimizer:

    optimizer = recipe_for(cfg.method).optimizer(cfg, model, lr, deepspeed=...)   # None: train.optimizer's

Every method without a recipe of its own gets ``Recipe()``, which does nothing and leaves the optimizer to
``train.optimizer`` (the loop's registry).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from omegaconf import DictConfig, OmegaConf


class Recipe:
    """Apply, then train: nothing to prepare."""

    def prepare(self, cfg: DictConfig, model, train: Callable[[DictConfig], dict]) -> dict | None:
        return None

    def optimizer(self, cfg: DictConfig, model, lr: float, deepspeed: bool):
        """The method's own optimizer over ``model``'s trainable parameters at ``lr``, or None for the loop's."""
        return None


class LoRAFARecipe(Recipe):
    """LoRA-FA (Zhang et al., 2023; arXiv 2308.03303): LoRA with A frozen at its random init (``methods.apply_method``
    freezes it) and B trained by PEFT's LoRA-FA optimizer (``peft.optimizers.create_lorafa_optimizer``): AdamW on
    B's gradient projected as ``(alpha/r)^-2 g_B (A A^T)^-1``, the closest low-rank step to full fine-tuning's.

    PEFT's optimizer fixes betas (0.9, 0.999) and eps 1e-6, and pairs each ``lora_A`` with its ``lora_B`` by
    parameter names in one group of whole tensors: DeepSpeed's ZeRO optimizers replace the groups by flat partitions,
    so LoRA-FA runs without DeepSpeed (``configs/accelerate/ddp.yaml`` at paper scale, ``idlora.runs.launch``)."""

    def optimizer(self, cfg: DictConfig, model, lr: float, deepspeed: bool):
        from peft.optimizers import create_lorafa_optimizer

        from ..errors import ConfigError

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
    taken from a trained dense LoRI-D of the same config (``sparsity=0``). The dense run is trained (or reused, if its
    adapter and results file match) under ``<run dir>/calibration``; LoRI-D itself (``sparsity=0``) needs nothing."""

    def prepare(self, cfg: DictConfig, model, train: Callable[[DictConfig], dict]) -> dict | None:
        if float(cfg.method.sparsity) <= 0:
            return None
        from accelerate.utils import set_seed

        info = self._masks_from_dense_run(cfg, model, train)
        set_seed(cfg.seed)  # LoRI-S draws the same dropout whether LoRI-D was just trained here or reused
        return info

    @staticmethod
    def _masks_from_dense_run(cfg: DictConfig, model, train) -> dict:
        from safetensors import safe_open

        from ..results import recorded_identity, run_identity
        from ..tuners.lori import magnitude_masks

        out_dir = Path(cfg.output_root) / cfg.run_id
        dense = OmegaConf.to_container(cfg, resolve=True)
        dense["method"]["sparsity"] = 0.0
        dense.update(run_id=f"{cfg.run_id}.lori_d", output_root=str(out_dir / "calibration"),
                     results_dir=str(out_dir / "calibration"), evaluate_after_training=False)
        dense["train"]["wandb"] = False  # one tracker run per process: the LoRI-S run's (its curve is what is reported)
        record_path = Path(dense["results_dir"]) / f"{dense['run_id']}.json"
        adapter_file = Path(dense["output_root"]) / dense["run_id"] / "adapter" / "adapter_model.safetensors"
        if not (adapter_file.exists() and recorded_identity(record_path) == run_identity(dense)):
            train(OmegaConf.create(dense))
        prefix, suffix = "base_model.model.", ".lori_B.weight"
        with safe_open(str(adapter_file), framework="pt") as f:
            b = {key[len(prefix):-len(suffix)]: f.get_tensor(key) for key in f.keys() if key.endswith(suffix)}
        masks = magnitude_masks(b, float(cfg.method.sparsity))
        model.base_model.set_masks(masks)
        kept = sum(int(m.sum()) for m in masks.values())
        entries = sum(m.numel() for m in masks.values())
        return {"calibration_run": str(record_path), "mask_density": kept / entries, "masked_entries": entries - kept}


RECIPES: dict[str, Recipe] = {"lori": LoRIRecipe(), "lorafa": LoRAFARecipe()}


def recipe_for(method_cfg) -> Recipe:
    """The recipe of a method config (``cfg.method``): its own if it has one, else ``Recipe()``."""
    return RECIPES.get(method_cfg.name, Recipe())
