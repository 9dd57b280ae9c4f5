"""ID-LoRA as a PEFT tuner: which modules to wrap, and where each module's row indices come from."""

from __future__ import annotations

import os

import torch
from torch import nn

from ... import pmrc
from .._base import LinearAdapterTuner, linear_modules
from .layer import IDLoRALayer, Linear

INDEX_NAME = "idlora_index"
BASES_NAME = "idlora_A"  # selection=svd|gaussian: the frozen bases themselves


def read_checkpoint_indices(checkpoint_dir: str) -> dict[str, torch.Tensor]:
    """``{checkpoint key prefix: (k, r) index}`` from a saved adapter, without loading its other tensors."""
    st = os.path.join(checkpoint_dir, "adapter_model.safetensors")
    out = {}
    if os.path.exists(st):
        from safetensors import safe_open

        with safe_open(st, framework="pt") as f:
            for key in f.keys():
                for name in (INDEX_NAME, BASES_NAME):
                    if key.endswith("." + name):
                        out[key[: -len(name) - 1]] = f.get_tensor(key)
        return out
    binf = os.path.join(checkpoint_dir, "adapter_model.bin")
    if os.path.exists(binf):
        sd = torch.load(binf, map_location="cpu", weights_only=True)
        return {k.rsplit(".", 1)[0]: v for k, v in sd.items() if k.endswith(("." + INDEX_NAME, "." + BASES_NAME))}
    raise ValueError(f"ID-LoRA: {checkpoint_dir} has no adapter_model.safetensors or adapter_model.bin.")


def checkpoint_indices(checkpoint_dir: str, linears: dict[str, nn.Linear]) -> dict[str, torch.Tensor]:
    """``{module name: (k, r) index or (k, r, d_in) bases}`` for ``linears``, read from a saved adapter."""
    saved = read_checkpoint_indices(checkpoint_dir)
    indices = {}
    for key in linears:
        ckpt_key = f"base_model.model.{key}"
        if ckpt_key not in saved:
            raise ValueError(
                f"ID-LoRA: the adapter in {checkpoint_dir} has no {INDEX_NAME} for module {key!r}. It was saved "
                "by an older version or for other target modules; it cannot be loaded without guessing its "
                "rows. Re-train or re-save it with this version."
            )
        indices[key] = saved[ckpt_key]
    return indices


def placeholder_indices(config, linears: dict[str, nn.Linear]) -> dict[str, torch.Tensor]:
    """Indices that the checkpoint being loaded overwrites: invalid on purpose (-1 rows, NaN bases, or the meta
    device), so a layer whose indices were never loaded refuses to run (``IDLoRALayer.check_rows_loaded``)."""
    meta = any(lin.weight.is_meta for lin in linears.values())
    device = "meta" if meta else "cpu"
    if config.selection in pmrc.ROW_SELECTIONS:
        return {key: torch.full((config.k, config.r), -1, dtype=torch.long, device=device) for key in linears}
    return {key: torch.full((config.k, config.r, lin.in_features), float("nan"), device=device)
            for key, lin in linears.items()}


class IDLoRAModel(LinearAdapterTuner):
    """Creates an ID-LoRA model from a pretrained transformers model (use ``peft.get_peft_model``).

    Each adapter has its own row indices. They come, in this order of preference, from the checkpoint being loaded
    (a config read by ``IDLoRAConfig.from_pretrained``), from the weights loaded right after injection (a config
    saved with the adapter has ``indices_in_checkpoint=True``: a placeholder the loaded ``idlora_index`` replaces,
    whichever library loads it), from a meta-device placeholder when the base weights are on the meta device
    (parameter counting), or from :func:`idlora.pmrc.select_rows_for_modules` (cached on disk).
    """

    prefix = "idlora_"
    tuner_layer_cls = IDLoRALayer
    layer_cls = Linear
    method_name = "ID-LoRA"
    uses_shared_state = False

    def _targeted_linears(self, model: nn.Module, config) -> dict[str, nn.Linear]:
        return {key: lin for key, lin in linear_modules(model).items() if self._check_target_module_exists(config, key)}

    def _prepare_injection(self, model: nn.Module, config, adapter_name: str) -> None:
        super()._prepare_injection(model, config, adapter_name)
        linears = self._targeted_linears(model, config)
        for key, lin in linears.items():  # every module is checked before any clustering starts
            pmrc.check_shape(lin.out_features, config.k, config.r, key)
            m = config.parts
            if m == 2 and lin.out_features % 2:
                raise ValueError(
                    f"ID-LoRA: Rank Boosting splits the output of {key!r} in halves, but d_out={lin.out_features} "
                    "is odd. Set method.rank_boosting=false or leave this module out of method.target_modules."
                )
            if lin.out_features % m:
                raise ValueError(
                    f"ID-LoRA: Rank Boosting with rb_parts={m} splits the output of {key!r} in {m} parts, but "
                    f"d_out={lin.out_features} is not divisible by {m}. Set method.rb_parts to a divisor of "
                    f"{lin.out_features} (and of r={config.r}) or leave this module out of method.target_modules."
                )
        checkpoint_dir = getattr(config, "_checkpoint_dir", None)
        if checkpoint_dir:
            indices = checkpoint_indices(checkpoint_dir, linears)
        elif config.indices_in_checkpoint or any(lin.weight.is_meta for lin in linears.values()):
            indices = placeholder_indices(config, linears)  # filled by the weights that follow; checked at forward
        else:
            weights = {key: lin.weight for key, lin in linears.items()}
            indices = pmrc.select_rows_for_modules(
                weights, config.k, config.r, config.selection, config.seed, config.pmrc_backend,
                restarts=config.pmrc_restarts,
            )
        self._pending_frozen = {**getattr(self, "_pending_frozen", {}), adapter_name: indices}

    def _layer_kwargs(self, config, adapter_name, target, current_key):
        return {"frozen": self._pending_frozen[adapter_name][current_key], "module_name": current_key}

    def _finish_injection(self, adapter_name: str) -> None:
        getattr(self, "_pending_frozen", {}).pop(adapter_name, None)

    @classmethod
    def _remap_adapter_state_dict_for_load(cls, model, config, adapter_name, state_dict):
        remapped = super()._remap_adapter_state_dict_for_load(model, config, adapter_name, state_dict)
        suffixes = (f".{INDEX_NAME}.{adapter_name}", f".{BASES_NAME}.{adapter_name}")
        missing = [k for k in model.state_dict() if k.endswith(suffixes) and k not in remapped]
        if missing:
            raise ValueError(
                f"ID-LoRA: the checkpoint has no {INDEX_NAME} for {len(missing)} module(s), e.g. {missing[0]!r}; "
                "loading it would keep row indices the checkpoint was not trained with. Re-save the adapter."
            )
        return remapped
