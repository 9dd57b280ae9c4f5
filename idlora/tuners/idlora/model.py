"""ID-LoRA as a PEFT tuner: which modules to wrap, and where each module's row indices come from."""

from __future__ import annotations

import os

import torch
from peft.tuners.tuners_utils import BaseTunerLayer
from torch import nn

from ... import pmrc
from .._base import LinearAdapterTuner
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


class IDLoRAModel(LinearAdapterTuner):
    """Creates an ID-LoRA model from a pretrained transformers model (use ``peft.get_peft_model``).

    Row indices come, in this order of preference, from the checkpoint being loaded (``PeftModel.from_pretrained``:
    never cluster again), from a meta-device placeholder when the base weights are on the meta device (parameter
    counting), or from :func:`idlora.pmrc.select_rows_for_modules` (cached on disk).
    """

    prefix = "idlora_"
    tuner_layer_cls = IDLoRALayer
    layer_cls = Linear
    method_name = "ID-LoRA"
    uses_shared_state = False

    def _targeted_linears(self, model: nn.Module, config) -> dict[str, nn.Linear]:
        out = {}
        for key, module in model.named_modules():
            if isinstance(module, BaseTunerLayer):
                continue
            if isinstance(module, nn.Linear) and self._check_target_module_exists(config, key):
                out[key] = module
        return out

    def _pre_injection_hook(self, model: nn.Module, config, adapter_name: str) -> None:
        super()._pre_injection_hook(model, config, adapter_name)
        linears = self._targeted_linears(model, config)
        for key, lin in linears.items():  # every module is checked before any clustering starts
            pmrc.check_shape(lin.out_features, config.k, config.r, key)
            if config.rank_boosting and lin.out_features % 2:
                raise ValueError(
                    f"ID-LoRA: Rank Boosting splits the output of {key!r} in halves, but d_out={lin.out_features} "
                    "is odd. Set method.rank_boosting=false or leave this module out of method.target_modules."
                )
        checkpoint_dir = getattr(config, "_checkpoint_dir", None)
        if checkpoint_dir:
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
        elif any(lin.weight.is_meta for lin in linears.values()):
            if config.selection in pmrc.ROW_SELECTIONS:
                indices = {key: torch.empty(config.k, config.r, dtype=torch.long, device="meta") for key in linears}
            else:
                indices = {key: torch.empty(config.k, config.r, lin.in_features, device="meta")
                           for key, lin in linears.items()}
        else:
            weights = {key: lin.weight for key, lin in linears.items()}
            indices = pmrc.select_rows_for_modules(
                weights, config.k, config.r, config.selection, config.seed, config.pmrc_backend
            )
        self._pending_index = indices

    def _layer_kwargs(self, config, adapter_name, target, current_key):
        return {"index": self._pending_index[current_key], "module_name": current_key}

    def _post_injection_hook(self, model: nn.Module, config, adapter_name: str) -> None:
        self._pending_index = {}

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
