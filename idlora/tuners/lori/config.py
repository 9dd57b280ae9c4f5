"""Configuration of LoRI (Zhang et al., COLM 2025: "LoRI: Reducing Cross-Task Interference in Multi-Task
Low-Rank Adaptation"), the baseline the ID-LoRA paper's reviewers asked for (issue 9)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .._base import AdapterConfigBase
from .._registry import ExtraPeftType


@dataclass
class LoRIConfig(AdapterConfigBase):
    """LoRA with a frozen random ``A`` (r, d_in) and a trainable ``B`` (d_out, r) under a fixed binary mask.

    Args:
        sparsity: fraction of ``B``'s entries the mask zeroes (LoRI-S; the LoRI paper's 0.9). ``0`` is LoRI-D,
            the dense calibration stage. A model made with ``sparsity > 0`` starts with an all-ones mask; training
            (``idlora.training.loop``) first trains LoRI-D, then sets the masks with :func:`magnitude_masks` (model-wise:
            one magnitude threshold over every ``B`` of the model) and trains ``B`` again from zero under them.
            The masks are saved with the adapter, so a loaded LoRI-S adapter is exactly the trained one.
    """

    sparsity: float = field(default=0.9, metadata={"help": "Fraction of B's entries masked out (0 = LoRI-D)."})

    def __post_init__(self):
        super().__post_init__()
        self.peft_type = ExtraPeftType.LORI
        self._validate_common("LoRI")
        if isinstance(self.sparsity, bool) or not isinstance(self.sparsity, (int, float)) \
                or not 0.0 <= float(self.sparsity) < 1.0:
            raise ValueError(f"LoRI: sparsity must be a number in [0, 1), got {self.sparsity!r}. "
                             "Set method.sparsity to e.g. 0.9 (LoRI-S) or 0 (LoRI-D).")
        self.sparsity = float(self.sparsity)
