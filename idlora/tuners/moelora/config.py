"""Configuration of MoELoRA as the ID-LoRA paper counts it (Table 6; docs/DESIGN.md §2)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .._base import AdapterConfigBase
from .._registry import ExtraPeftType
from .._routed import check_impl


@dataclass
class MoELoRAConfig(AdapterConfigBase):
    """``n_experts`` full rank-r LoRA experts (``A_j``: (r, d_in), ``B_j``: (d_out, r) zero-init) and a dense softmax
    gate ``(n_experts, d_in)`` on the token's hidden state. Table 6 counts 4 experts.

    The official MOELoRA code (liuqidong07/MOELoRA-peft) instead splits r across experts and gates on a task
    embedding; that variant is not implemented here (the paper's tables use this per-token reading). ``impl="official"``
    computes this reading in the official code's order of operations (a loop over the experts; ``_routed``)."""

    impl: str = field(default="ours", metadata={"help": "ours: one fused product per layer | official: the official "
                                                           "code's loop over the experts (same function)."})
    n_experts: int = field(default=4, metadata={"help": "Number of LoRA experts."})

    def __post_init__(self):
        super().__post_init__()
        self.peft_type = ExtraPeftType.MOELORA
        self._validate_common("MoELoRA")
        check_impl("MoELoRA", self.impl)
        if not isinstance(self.n_experts, int) or self.n_experts < 1:
            raise ValueError(f"MoELoRA: n_experts must be an integer >= 1, got {self.n_experts!r}.")
