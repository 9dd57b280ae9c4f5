"""Configuration of ID-LoRA (docs/DESIGN.md §1)."""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from typing import Optional

from ...pmrc import SELECTIONS, check_restarts
from .._base import AdapterConfigBase
from .._registry import ExtraPeftType

ROUTERS = ("linear", "inner", "text", "uniform")
DROPOUT_POSITIONS = ("input", "rows")
PMRC_BACKENDS = ("reference", "torch")


@dataclass
class IDLoRAConfig(AdapterConfigBase):
    """ID-LoRA: frozen bases ``A_i = W[S_i, :]`` (rows of the pretrained weight) and one shared trainable ``B``.

    Args:
        r: rows per cluster (the rank of each frozen base ``A_i``). Must be even with Rank Boosting.
        k: number of clusters / frozen bases (paper: 4). Needs ``k * r <= d_out`` for every targeted module.
        alpha: the update is scaled by ``alpha / r`` (paper: r=128, alpha=256).
        dropout: dropout probability on the adapter path (paper: 0.05).
        selection: how rows are chosen: ``pmrc`` (size-constrained k-means, the r rows nearest each
            centroid), ``serial`` (``S_i = [i*r, (i+1)*r)``, ablation SS) or ``random`` (seeded, ablation RS).
            Reviewer ablations (not rows of W; the bases are stored as ``idlora_A`` (k, r, d_in)): ``svd``
            (top-r right singular directions of k row blocks of W) and ``gaussian`` (random, W's entry scale).
        rank_boosting: eq. 4 (``B`` of shape ``(d_out/2, r/2)`` applied to both halves of ``x_i``); without it
            ``B`` is ``(d_out, r)`` (Table 3 "w/o RB").
        rb_parts: the Rank Boosting factor m (beyond the paper): ``x_i`` split in m parts ``x_i^1..x_i^m`` of r/m,
            one ``B`` of shape ``(d_out/m, r/m)`` applied to each, ``y_i = [B x_i^1 ; ... ; B x_i^m]``
            (``d_out*r/m**2`` entries). Default 2: eq. 4. Needs m to divide r and every targeted d_out.
            m = 1 is written ``rank_boosting=false``, which leaves ``rb_parts`` at its default: one way to say
            each setting, so one run identity.
        router: ``linear``: ``alpha = softmax(R h)``, ``R`` of shape ``(k, d_in)`` — what Table 6's counts imply;
            ``inner``: ``alpha = softmax_i(T . x_i)``, ``T`` of shape ``(r,)`` — the text's T with a softmax added;
            ``text``: ``alpha_i = T . x_i``, ``T`` of shape ``(r,)``, no softmax — the paper's text (§4.1) as
            written; ``uniform``: ``alpha_i = 1/k``, no router parameters (ablation: what routing buys).
        dropout_position: ``input`` (LoRA's convention: ``A_i drop(h)``, one fused ``(k*r, d_in)`` product when
            training) or ``rows`` (``drop(A_i h)``: the projections are gathered from the base output, so training
            costs no extra matmul on the A side). Identical in eval mode.
        seed: seeds PMRC's k-means, random selection and the router's initialisation.
        pmrc_backend: ``torch`` (default: fast size-constrained k-means, on device; objective within 1% of the
            reference, tested) or ``reference`` (``k-means-constrained``, the paper's algorithm).
        pmrc_restarts: seeded restarts of PMRC's k-means, the lowest objective kept; None (default): the backend's
            own (torch 3, reference 10, k-means-constrained's n_init). The paper scale sets 1: on a CPU it halves
            the clustering of an 8B model, at an objective within 1% of the reference's (``make pmrc_cost``).
        indices_in_checkpoint: written ``true`` into every saved ``adapter_config.json``: the row indices (or bases)
            are in the adapter file, so a model built from this config takes them from there (every loading path:
            PEFT's, transformers', lm-eval's) and never clusters. Leave it ``False`` to select rows.
    """

    k: int = field(default=4, metadata={"help": "Number of clusters (frozen bases A_i)."})
    selection: str = field(default="pmrc", metadata={"help": "pmrc | serial | random | svd | gaussian"})
    rank_boosting: bool = field(default=True, metadata={"help": "Rank Boosting (eq. 4)."})
    rb_parts: int = field(default=2, metadata={"help": "Rank Boosting factor m (parts of x_i, >= 2); 2: eq. 4."})
    router: str = field(default="linear", metadata={"help": "linear | inner | text | uniform"})
    dropout_position: str = field(default="input", metadata={"help": "input | rows"})
    pmrc_backend: str = field(default="torch", metadata={"help": "torch | reference"})
    pmrc_restarts: Optional[int] = field(default=None, metadata={"help": "k-means restarts; None: the backend's."})
    indices_in_checkpoint: bool = field(
        default=False, metadata={"help": "True in a saved config: the indices come from the adapter file."}
    )

    def __post_init__(self):
        super().__post_init__()
        self.peft_type = ExtraPeftType.IDLORA
        self._validate_common("ID-LoRA")
        if not isinstance(self.k, int) or isinstance(self.k, bool) or self.k < 1:
            raise ValueError(f"ID-LoRA: k (number of clusters) must be an integer >= 1, got k={self.k!r}.")
        for name, value, valid in (
            ("selection", self.selection, SELECTIONS),
            ("router", self.router, ROUTERS),
            ("dropout_position", self.dropout_position, DROPOUT_POSITIONS),
            ("pmrc_backend", self.pmrc_backend, PMRC_BACKENDS),
        ):
            if value not in valid:
                raise ValueError(f"ID-LoRA: unknown {name} {value!r}; valid: {', '.join(valid)}.")
        self._validate_rb_parts()
        try:
            check_restarts(self.pmrc_restarts)
        except ValueError as e:
            raise ValueError(f"ID-LoRA: {e}") from None

    @property
    def parts(self) -> int:
        """The Rank Boosting factor m in effect: ``rb_parts`` with Rank Boosting, 1 without."""
        return self.rb_parts if self.rank_boosting else 1

    def _validate_rb_parts(self) -> None:
        m = self.rb_parts
        if not isinstance(m, int) or isinstance(m, bool) or m < 1:
            raise ValueError(f"ID-LoRA: rb_parts (the Rank Boosting factor m) must be an integer >= 2, got "
                             f"rb_parts={m!r}.")
        if m == 1:
            raise ValueError("ID-LoRA: rb_parts=1 (one part, B of (d_out, r)) is Rank Boosting off: set "
                             "method.rank_boosting=false and leave method.rb_parts at its default.")
        if m != 2 and not self.rank_boosting:
            raise ValueError(f"ID-LoRA: rank_boosting=false is m = 1 part; it does not take rb_parts={m}. Set "
                             "method.rank_boosting=true for m parts, or leave method.rb_parts at its default (2).")
        if self.parts == 2 and self.r % 2:
            raise ValueError(
                f"ID-LoRA: Rank Boosting splits x_i in two halves, so r must be even; got r={self.r}. "
                f"Use r={self.r + 1} or set rank_boosting=false."
            )
        if self.r % self.parts:
            up = self.r + self.parts - self.r % self.parts
            raise ValueError(f"ID-LoRA: Rank Boosting with rb_parts={self.parts} splits x_i in {self.parts} parts, so "
                             f"r must be divisible by {self.parts}; got r={self.r}. Use method.r={up} or an "
                             f"rb_parts that divides {self.r}.")

    def _saved_copy(self) -> "IDLoRAConfig":
        """The saved config says ``indices_in_checkpoint=True``: the indices travel with it."""
        saved = copy.copy(self)
        saved.indices_in_checkpoint = True
        return saved

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, subfolder=None, **kwargs):
        """Load the config and remember where it came from, so that the tuner takes the row indices from the
        checkpoint instead of clustering again (hours at paper scale)."""
        config = super().from_pretrained(pretrained_model_name_or_path, subfolder=subfolder, **kwargs)
        path = os.path.join(pretrained_model_name_or_path, subfolder or "")
        if os.path.isdir(path):
            config._checkpoint_dir = path
        return config
