"""Trainable parameters of each method's adapter, counted on the real adapters instantiated on a meta-device model
(``models.meta``): no formula, no weights, no training. Table 6 reads its counts here; ``tests/test_methods.py``
checks them against docs/DESIGN.md §1's closed forms independently."""

from __future__ import annotations

import torch
from omegaconf import OmegaConf

from .config import compose, load_group
from .methods import PEFT_BASELINES, apply_method, count_parameters
from .models.meta import meta_model
from .tuners.lori import LoRIConfig, kept_entries

LORI_SPARSITY = LoRIConfig.__dataclass_fields__["sparsity"].default  # = configs/method/lori.yaml (tested)


def shipped_structure(method: str) -> dict:
    """A PEFT baseline's settings besides its rank, as ``configs/method/<method>.yaml`` ships them at paper scale
    (VB-LoRA's bank, Lily's stride_A and num_B, ...); ``alpha: None`` where the method has no LoRA scaling."""
    cfg = OmegaConf.to_container(compose(["scale=paper", f"method={method}"]).method)
    kw = {k: v for k, v in cfg.items() if k not in ("name", "r", "alpha", "dropout", "seed", "target_modules")}
    return {**kw, **({} if "alpha" in cfg else {"alpha": None})}


def trainable_count(model_name: str, method: str, r: int, **method_kw) -> tuple[int, int]:
    """(trainable, total) parameters of ``method`` at rank ``r`` on ``model_name``, instantiated on meta. The
    paper's methods and LoRI take their config classes' defaults; the PEFT baselines of issue 20 their shipped
    structure (``shipped_structure``)."""
    kw = {"alpha": 2 * r, **(shipped_structure(method) if method in PEFT_BASELINES else {}), **method_kw}
    with torch.device("meta"):
        model = apply_method(meta_model(model_name), {"name": method, "r": r, **kw})
    return count_parameters(model)


def lori_trainable(count: int) -> int:
    """LoRI-S's trainable entries of a LoRI adapter with ``count`` B entries: those its task mask keeps at the
    default sparsity (``LORI_SPARSITY``)."""
    return kept_entries(count, LORI_SPARSITY)


def paper_scale_counts(model_name: str = "llama3_8b") -> dict[str, tuple[int, int]]:
    """Each PEFT baseline's (rank, trainable count) at the rank its Tables 1-2 rows use at paper scale."""
    ranks = load_group("scale", "paper").rank
    return {m: (int(ranks[m]), trainable_count(model_name, m, int(ranks[m]))[0]) for m in PEFT_BASELINES}
