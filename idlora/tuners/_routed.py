"""A dense mixture of LoRA experts, the shape HydraLoRA and MoELoRA share (docs/DESIGN.md §2).

For a frozen ``W`` (d_out, d_in) and a token ``h`` (d_in,), with n experts:

    g   = softmax(G h)                                 (n,)      router G: (n, d_in), float32, no bias, dense
    z_j = A_j drop(h)                                  (r,)      HydraLoRA: one shared A (A_j = A); MoELoRA: n A_j
    u   = W h + (alpha / r) * sum_j g_j B_j z_j        (d_out,)  B_j: (d_out, r), zero-init

computed as one product: ``sum_j g_j B_j z_j = [B_1 | ... | B_n] (g ⊗ z)``, so ``<prefix>B`` holds the n heads
side by side as one ``nn.Linear(n*r, d_out)`` (head j = columns ``j*r:(j+1)*r``), and MoELoRA's
``<prefix>A`` stacks its n experts as one ``nn.Linear(d_in, n*r)`` (expert j = rows ``j*r:(j+1)*r``).

``impl="official"`` (``method.impl=official``) computes the same function on the same tensors the way the methods'
official layer code does, to time it beside ours (Figure 3; docs/DESIGN.md §2): a Python loop over the n heads or
experts, each a separate ``A`` product (HydraLoRA recomputes the shared ``A drop(h)`` once per head, a fresh dropout
mask each time; MoELoRA one ``A_j`` per expert) and a separate ``B_j`` product, scaled and weighted by ``g_j``
after ``B_j`` and accumulated into the output, n full-width updates per layer (ours: one). No float32 inference
shortcut (their code has none). Same outputs to float tolerance wherever the dropout is the identity (eval mode,
or dropout 0); in training with dropout the per-head masks differ from ours, as theirs do.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from peft.tuners.tuners_utils import BaseTunerLayer
from torch import nn

from ._base import kaiming_init_, layer_generator

IMPLS = ("ours", "official")  # method.impl: this package's forward, or the official code's order of operations


def check_impl(method: str, impl) -> None:
    if impl not in IMPLS:
        raise ValueError(f"{method}: impl must be one of {', '.join(IMPLS)}, got impl={impl!r}. Set method.impl=ours "
                         "(this package's forward) or method.impl=official (the official code's).")


class RoutedLoRALayer(BaseTunerLayer):
    prefix: str  # "hydralora_" / "moelora_"
    shared_A: bool  # HydraLoRA: True

    def __init__(self, base_layer: nn.Module, **kwargs) -> None:
        self.base_layer = base_layer
        for part in ("A", "B", "router", "dropout"):
            setattr(self, self.prefix + part, nn.ModuleDict({}))
        self.r, self.n_experts, self.scaling, self.impl = {}, {}, {}, {}
        self._disable_adapters = False
        self.merged_adapters = []
        base = self.get_base_layer()
        self.in_features, self.out_features = base.in_features, base.out_features

    def _parts(self, name: str):
        p = self.prefix
        return getattr(self, p + "A")[name], getattr(self, p + "B")[name], getattr(self, p + "router")[name], \
            getattr(self, p + "dropout")[name]

    def update_layer(self, adapter_name: str, config, module_name: str = "") -> None:
        r, n, d_in, d_out = config.r, config.n_experts, self.in_features, self.out_features
        self.r[adapter_name], self.n_experts[adapter_name] = r, n
        self.scaling[adapter_name] = config.alpha / r
        self.impl[adapter_name] = config.impl
        device = self.get_base_layer().weight.device
        factory = {"device": device} if device.type == "meta" else {}
        p = self.prefix
        getattr(self, p + "A")[adapter_name] = nn.Linear(d_in, r if self.shared_A else n * r, bias=False, **factory)
        getattr(self, p + "B")[adapter_name] = nn.Linear(n * r, d_out, bias=False, **factory)
        getattr(self, p + "router")[adapter_name] = nn.Linear(d_in, n, bias=False, **factory)
        getattr(self, p + "dropout")[adapter_name] = nn.Dropout(config.dropout) if config.dropout > 0 else nn.Identity()
        if device.type != "meta":
            gen = layer_generator(config.seed, module_name)
            A, B, G, _ = self._parts(adapter_name)
            kaiming_init_(A, gen)
            kaiming_init_(G, gen)
            nn.init.zeros_(B.weight)
        self._move_adapter_to_device_of_base_layer(adapter_name)
        self.set_adapter(self.active_adapters)

    def forward(self, h: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        result = self.base_layer(h, *args, **kwargs)  # (..., d_out) = W h
        if self.disable_adapters:
            return result
        active = self.active_adapters
        shortcut = len(active) == 1 and not self.training and not torch.is_grad_enabled()
        if shortcut and self.impl.get(active[0]) != "official":
            updated = self._inference_update(active[0], h, result)
            if updated is not None:
                return updated
        for name in active:
            if name not in getattr(self, self.prefix + "A"):
                continue
            if self.impl[name] == "official":
                result = self._official_update(name, h, result)
                continue
            A, B, G, drop = self._parts(name)
            n, r = self.n_experts[name], self.r[name]
            logits = G(h.to(G.weight.dtype))  # (..., n); the softmax in float32 at least (bf16/fp16 training)
            g = torch.softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)), dim=-1).to(A.weight.dtype)
            z = A(drop(h).to(A.weight.dtype))  # (..., r) shared, or (..., n*r) stacked experts
            z = z.unsqueeze(-2) if self.shared_A else z.reshape(*z.shape[:-1], n, r)  # (..., 1|n, r)
            mixed = (g.unsqueeze(-1) * z).reshape(*g.shape[:-1], n * r)  # (..., n*r) = g ⊗ z
            result = result + (B(mixed) * self.scaling[name]).to(result.dtype)  # sum_j g_j B_j z_j
        return result

    def _inference_update(self, name: str, h: torch.Tensor, result: torch.Tensor) -> torch.Tensor | None:
        """The loop body above for one float32 adapter in eval mode without autograd, op for op (the same bits),
        minus its module-attribute lookups and no-op casts, which dominate batch-1 decoding on a CPU. ID-LoRA has
        the same shortcut, so Figure 3 compares the methods at equal engineering. None: not this case."""
        parts = [getattr(self, self.prefix + part)._modules.get(name) for part in ("A", "B", "router")]
        if any(p is None for p in parts):
            return None
        A, B, G = (p.weight for p in parts)  # (r | n*r, d_in), (d_out, n*r), (n, d_in)
        if not (h.dtype == result.dtype == A.dtype == B.dtype == G.dtype == torch.float32):
            return None
        n, r = self.n_experts[name], self.r[name]
        g = torch.softmax(F.linear(h, G), dim=-1)  # (..., n)
        z = F.linear(h, A)  # dropout is the identity in eval mode
        z = z.unsqueeze(-2) if self.shared_A else z.reshape(*z.shape[:-1], n, r)  # (..., 1|n, r)
        mixed = (g.unsqueeze(-1) * z).reshape(*g.shape[:-1], n * r)  # (..., n*r) = g ⊗ z
        return result + F.linear(mixed, B) * self.scaling[name]

    def _official_update(self, name: str, h: torch.Tensor, result: torch.Tensor) -> torch.Tensor:
        """``result + (alpha/r) sum_j g_j B_j A_j drop(h)`` as the official code computes it (module docstring):
        head by head, each head's update scaled, weighted and added to the full-width output on its own."""
        A, B, G, drop = self._parts(name)
        n, r, scaling = self.n_experts[name], self.r[name], self.scaling[name]
        h = h.to(A.weight.dtype)  # MOELoRA's cast of the input to the adapter's dtype (HydraLoRA's are equal)
        if self.shared_A:  # HydraLoRA: softmax(route(x), dtype=float32) in the result's dtype
            g = torch.softmax(G(h), dim=-1, dtype=torch.float32).to(result.dtype)
        else:  # MOELoRA's Gate: nn.Softmax over the experts in the gate's dtype (it gates on a task embedding)
            g = torch.softmax(G(h), dim=-1)
        for j in range(n):
            A_j = A.weight if self.shared_A else A.weight[j * r:(j + 1) * r]  # (r, d_in)
            z = F.linear(drop(h), A_j)  # (..., r): HydraLoRA recomputes A drop(h) for every head
            u = F.linear(z, B.weight[:, j * r:(j + 1) * r])  # (..., d_out) = B_j z
            if self.shared_A:  # HydraLoRA: result = result + g_j * B_j(A(drop(x))) * scaling
                result = result + (g[..., j].unsqueeze(-1) * u * scaling).to(result.dtype)
            else:  # MOELoRA: result += B_j(A_j(drop(x))) * scaling * g_j, in place
                result += (u * scaling * g[..., j].unsqueeze(-1)).to(result.dtype)
        return result

    def merge(self, safe_merge: bool = False, adapter_names=None) -> None:
        raise ValueError(f"{type(self).__name__} cannot be merged: its router mixes the experts per token.")

    def unmerge(self) -> None:
        return None
