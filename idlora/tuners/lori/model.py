"""LoRI as a PEFT tuner, and the calibration step that turns a trained LoRI-D into LoRI-S masks."""

from __future__ import annotations

import torch

from .._base import LinearAdapterTuner
from .layer import Linear, LoRILayer


def kept_entries(n: int, sparsity: float) -> int:
    """How many of ``n`` entries of B a LoRI mask at ``sparsity`` keeps: ``round((1 - sparsity) n)``, at least 1."""
    return max(1, int(round((1.0 - sparsity) * n)))


def magnitude_masks(b_weights: dict[str, torch.Tensor], sparsity: float) -> dict[str, torch.Tensor]:
    """Model-wise magnitude masks: keep exactly the ``round((1 - sparsity) * N)`` largest ``|B|`` entries over all
    the ``B`` matrices together (N entries in all), as LoRI's default extraction does. Ties at the threshold are broken
    by position (the first entries in module order, then row-major, are kept): a B stored in bf16 (DeepSpeed's bf16
    mode, autocast's bf16 copies) has so few distinct magnitudes that keeping every tie kept 82% of the entries at a
    sparsity of 0.9.

    ``b_weights``: ``{module name: B (d_out, r)}`` from a trained LoRI-D. Returns ``{name: bool (d_out, r)}``."""
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"LoRI: sparsity must be in [0, 1), got {sparsity}.")
    if not b_weights:
        raise ValueError("LoRI: no B matrices to calibrate masks from.")
    flat = torch.cat([w.detach().abs().float().reshape(-1).cpu() for w in b_weights.values()])
    keep = torch.argsort(flat, descending=True, stable=True)[: kept_entries(flat.numel(), sparsity)]
    if flat[keep[-1]] == 0:
        raise ValueError("LoRI: the LoRI-D adapter's B is (almost) all zeros, so no mask can be calibrated from it; "
                         "train LoRI-D longer or with a larger lr.")
    kept = torch.zeros_like(flat, dtype=torch.bool)
    kept[keep] = True
    masks, start = {}, 0
    for name, w in b_weights.items():
        masks[name] = kept[start:start + w.numel()].reshape(w.shape).to(w.device)
        start += w.numel()
    return masks


class LoRIModel(LinearAdapterTuner):
    """Creates a LoRI model from a pretrained transformers model (use ``peft.get_peft_model``)."""

    prefix = "lori_"
    tuner_layer_cls = LoRILayer
    layer_cls = Linear
    method_name = "LoRI"

    def _check_merge_allowed(self):  # a LoRA-shaped update: merging is exact
        return None

    def lori_layers(self) -> dict[str, LoRILayer]:
        return {name: m for name, m in self.model.named_modules() if isinstance(m, LoRILayer)}

    def set_masks(self, masks: dict[str, torch.Tensor], adapter_name: str = "default") -> None:
        layers = self.lori_layers()
        missing = sorted(set(layers) - set(masks))
        if missing:
            raise ValueError(f"LoRI: no mask for {len(missing)} module(s), e.g. {missing[0]!r}.")
        for name, layer in layers.items():
            layer.set_mask(adapter_name, masks[name])
