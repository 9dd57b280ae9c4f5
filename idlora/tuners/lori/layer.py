"""The LoRI adapter layer. For a frozen ``W`` (d_out, d_in) and a token ``h`` (d_in,):

    z = A drop(h)                          (r,)      A: (r, d_in), random (LoRA's kaiming-uniform init), frozen
    u = W h + (alpha / r) (B ⊙ M) z        (d_out,)  B: (d_out, r) trainable, zero-init; M: (d_out, r) in {0, 1}

``M`` is all ones for LoRI-D and the calibrated task mask for LoRI-S. Masking the weight in the forward also
masks its gradient, so masked entries of ``B`` stay exactly zero (they start at zero; AdamW's decoupled decay
keeps a zero at zero). ``A`` and ``M`` are persistent buffers saved with the adapter. Mergeable like LoRA.
``tests/test_lori.py`` checks the forward against this formula written out.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from peft.tuners._buffer_dict import BufferDict
from peft.tuners.tuners_utils import BaseTunerLayer
from torch import nn

from .._base import layer_generator, make_linear_class


class LoRILayer(BaseTunerLayer):
    prefix = "lori_"
    adapter_layer_names = ("lori_B",)
    other_param_names = ("lori_A", "lori_mask", "lori_dropout", "r", "scaling")

    def __init__(self, base_layer: nn.Module, **kwargs) -> None:
        self.base_layer = base_layer
        self.lori_B = nn.ModuleDict({})
        self.lori_dropout = nn.ModuleDict({})
        self.lori_A = BufferDict({}, persistent=True)  # (r, d_in) frozen random projection
        self.lori_mask = BufferDict({}, persistent=True)  # (d_out, r) 0/1, in B's dtype
        self.r, self.scaling = {}, {}
        self._disable_adapters = False
        self.merged_adapters = []
        base = self.get_base_layer()
        self.in_features, self.out_features = base.in_features, base.out_features

    def update_layer(self, adapter_name: str, config, module_name: str = "") -> None:
        r, d_in, d_out = config.r, self.in_features, self.out_features
        self.r[adapter_name] = r
        self.scaling[adapter_name] = config.alpha / r
        self.lori_dropout[adapter_name] = nn.Dropout(config.dropout) if config.dropout > 0 else nn.Identity()
        weight = self.get_base_layer().weight
        meta = weight.device.type == "meta"
        factory = {"device": weight.device} if meta else {}
        self.lori_B[adapter_name] = nn.Linear(r, d_out, bias=False, **factory)  # B: (d_out, r)
        if meta:
            self.lori_A[adapter_name] = torch.empty(r, d_in, device="meta")
            self.lori_mask[adapter_name] = torch.empty(d_out, r, device="meta")
        else:
            bound = 1.0 / d_in**0.5  # LoRA's kaiming_uniform_(a=sqrt(5)) on (r, d_in): U(-1/sqrt(d_in), 1/sqrt(d_in))
            A = torch.empty(r, d_in).uniform_(-bound, bound, generator=layer_generator(config.seed, module_name))
            self.lori_A[adapter_name] = A.to(weight.dtype)
            self.lori_mask[adapter_name] = torch.ones(d_out, r, dtype=weight.dtype)
            nn.init.zeros_(self.lori_B[adapter_name].weight)
        self._move_adapter_to_device_of_base_layer(adapter_name)
        self.set_adapter(self.active_adapters)

    def masked_B(self, adapter_name: str) -> torch.Tensor:
        """``B ⊙ M``: (d_out, r)."""
        B = self.lori_B[adapter_name].weight
        return B * self.lori_mask[adapter_name].to(B.dtype)

    def set_mask(self, adapter_name: str, mask: torch.Tensor) -> None:
        """Install a (d_out, r) 0/1 mask and zero the entries of ``B`` it removes."""
        B = self.lori_B[adapter_name].weight
        if tuple(mask.shape) != tuple(B.shape):
            raise ValueError(f"LoRI: mask of shape {tuple(mask.shape)} for B of shape {tuple(B.shape)}.")
        self.lori_mask[adapter_name] = mask.to(device=B.device, dtype=B.dtype)
        with torch.no_grad():
            B.mul_(self.lori_mask[adapter_name])

    def delta_weight(self, adapter_name: str) -> torch.Tensor:
        """``(alpha/r) (B ⊙ M) A``: (d_out, d_in)."""
        A = self.lori_A[adapter_name]
        return self.scaling[adapter_name] * (self.masked_B(adapter_name) @ A.to(self.lori_B[adapter_name].weight.dtype))

    def forward(self, h: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        if self.disable_adapters:
            if self.merged:
                self.unmerge()
            return self.base_layer(h, *args, **kwargs)
        result = self.base_layer(h, *args, **kwargs)  # (..., d_out) = W h
        if self.merged:
            return result
        for name in self.active_adapters:
            if name not in self.lori_B:
                continue
            B = self.masked_B(name)  # (d_out, r)
            z = F.linear(self.lori_dropout[name](h).to(B.dtype), self.lori_A[name].to(B.dtype))  # (..., r)
            result = result + (F.linear(z, B) * self.scaling[name]).to(result.dtype)
        return result

    def merge(self, safe_merge: bool = False, adapter_names=None) -> None:
        from peft.tuners.tuners_utils import check_adapters_to_merge

        for name in check_adapters_to_merge(self, adapter_names):
            if name not in self.lori_B:
                continue
            base = self.get_base_layer()
            delta = self.delta_weight(name).to(base.weight.dtype)
            if safe_merge:
                merged = base.weight.data + delta
                if not torch.isfinite(merged).all():
                    raise ValueError(f"NaNs detected in the merged weights. The adapter {name} seems to be broken")
                base.weight.data = merged
            else:
                base.weight.data += delta
            self.merged_adapters.append(name)

    def unmerge(self) -> None:
        while self.merged_adapters:
            name = self.merged_adapters.pop()
            if name in self.lori_B:
                base = self.get_base_layer()
                base.weight.data -= self.delta_weight(name).to(base.weight.dtype)


Linear = make_linear_class(LoRILayer)
