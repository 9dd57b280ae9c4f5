"""Configuration of HydraLoRA (Tian et al. 2024), as its official code builds it (docs/DESIGN.md §2)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .._base import AdapterConfigBase
from .._registry import ExtraPeftType
from .._routed import check_impl


@dataclass
class HydraLoRAConfig(AdapterConfigBase):
    """One shared ``A`` (r, d_in), ``n_experts`` zero-init heads ``B_j`` (d_out, r) and a dense float32 softmax
    router ``(n_experts, d_in)`` on the raw input; no top-k, no balance loss. Table 6 counts 3 heads."""

    impl: str = field(default="ours", metadata={"help": "ours: one fused product per layer | official: the official "
                                                           "code's loop over the experts (same function)."})
    n_experts: int = field(default=3, metadata={"help": "Number of B heads."})

    def __post_init__(self):
        super().__post_init__()
        self.peft_type = ExtraPeftType.HYDRALORA
        self._validate_common("HydraLoRA")
        check_impl("HydraLoRA", self.impl)
        if not isinstance(self.n_experts, int) or self.n_experts < 1:
            raise ValueError(f"HydraLoRA: n_experts must be an integer >= 1, got {self.n_experts!r}.")
