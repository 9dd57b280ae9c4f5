"""One function builds any method of the paper from a method config (Hydra's ``method`` group or a dict).

    apply_method(model, {"name": "idlora", "r": 128, "alpha": 256, "dropout": 0.05, "k": 4, ...})

Methods: ``idlora`` (ours), ``lora`` and ``dora`` (PEFT's own, ``use_dora=True``), ``hydralora`` and
``moelora`` (own PEFT methods, docs/DESIGN.md §2), ``fft`` (full fine-tuning: every weight trainable), and ``lori``
(LoRI, the baseline the paper's reviewers asked for; not in the paper's tables, marked as ours).
All adapters target the same modules (the paper's q,k,v,o,gate,up,down by default).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from .errors import ConfigError
from .tuners import HydraLoRAConfig, IDLoRAConfig, LoRIConfig, MoELoRAConfig
from .tuners._base import PAPER_TARGETS

METHODS = ("idlora", "lora", "dora", "hydralora", "moelora", "fft", "lori")
# The one list of the methods' labels, in the order the tables list them (the paper's: FFT first, ID-LoRA last; then
# LoRI, the baseline the reviewers asked for, which the tables of results mark "(ours)": the paper has no LoRI numbers).
LABELS = {"fft": "FFT", "lora": "LoRA", "dora": "DoRA", "hydralora": "HydraLoRA", "moelora": "MoELoRA",
          "idlora": "ID-LoRA", "lori": "LoRI"}
TABLE_ORDER = tuple(LABELS)
BEYOND_PAPER = ("lori",)
# Not a method: the untrained model (``method=base``), the base row of the tables of results; nothing trains.
BASE = "base"
assert set(LABELS) == set(METHODS)


def table_label(method: str) -> str:
    """The label of ``method`` in a table of results: ``LABELS``, with "(ours)" for a method the paper lacks."""
    return LABELS[method] + (" (ours)" if method in BEYOND_PAPER else "")

# Keys each method accepts besides the common ones (r, alpha, dropout, target_modules, seed).
_SPECIFIC = {
    "idlora": ("k", "selection", "rank_boosting", "rb_parts", "router", "dropout_position", "pmrc_backend"),
    "lora": (),
    "dora": (),
    "hydralora": ("n_experts",),
    "moelora": ("n_experts",),
    "fft": (),
    "lori": ("sparsity",),
}
# Keys the training loop reads, not the adapter (LoRI-S trains at sparse_lr_multiplier x the lr, as LoRI's recipe).
_TRAINING_ONLY = {"lori": ("sparse_lr_multiplier",)}
_COMMON = ("r", "alpha", "dropout", "target_modules", "seed")


def _plain(cfg: Mapping) -> dict[str, Any]:
    try:
        from omegaconf import DictConfig, OmegaConf

        if isinstance(cfg, DictConfig):
            return OmegaConf.to_container(cfg, resolve=True)
    except ImportError:  # pragma: no cover
        pass
    return dict(cfg)


def build_peft_config(method_cfg: Mapping):
    """The PEFT config of a method config, or ``None`` for full fine-tuning and for ``base`` (no adapter).

    Keys not used by the named method are ignored only if they are ``None``; anything else is an error, so a
    misspelt or misplaced override (``method.k=6`` on LoRA) never passes silently."""
    cfg = _plain(method_cfg)
    name = cfg.pop("name", None)
    if name == BASE:
        return None
    if name not in METHODS:
        raise ConfigError(f"unknown method {name!r}; valid: {', '.join(METHODS)}, or {BASE} for the untrained "
                          "model (set method=<name>).")
    known = set(_COMMON) | set(_SPECIFIC[name])
    unused = {k: v for k, v in cfg.items() if k not in known | set(_TRAINING_ONLY.get(name, ())) and v is not None}
    # Hydra method files share some keys (e.g. description); those are documentation, not parameters.
    unused.pop("description", None)
    if unused:
        raise ConfigError(
            f"method {name!r} does not take {sorted(unused)}; it takes {sorted(known)}. Remove the override(s)."
        )
    kw = {k: v for k, v in cfg.items() if k in known and v is not None}
    if name == "fft":
        return None
    targets = list(kw.pop("target_modules", PAPER_TARGETS))
    common = dict(target_modules=targets, task_type="CAUSAL_LM")
    if name in ("lora", "dora"):
        from peft import LoraConfig

        r = kw.get("r", 8)
        return LoraConfig(r=r, lora_alpha=kw.get("alpha", 2 * r), lora_dropout=kw.get("dropout", 0.0),
                          use_dora=(name == "dora"), **common)
    cls = {"idlora": IDLoRAConfig, "hydralora": HydraLoRAConfig, "moelora": MoELoRAConfig, "lori": LoRIConfig}[name]
    try:
        return cls(**kw, **common)
    except ValueError as e:
        raise ConfigError(str(e)) from None


def apply_method(model: torch.nn.Module, method_cfg: Mapping, seed: int | None = None):
    """Return ``model`` adapted by the method (a ``PeftModel``), or the model itself: all trainable for ``fft``,
    frozen for ``base``."""
    from peft import get_peft_model

    peft_config = build_peft_config(method_cfg)
    if seed is None:
        seed = int(_plain(method_cfg).get("seed") or 0)
    torch.manual_seed(seed)  # LoRA/DoRA draw their A from the global generator
    if peft_config is None:
        model.requires_grad_(_plain(method_cfg).get("name") != BASE)
        return model
    try:
        return get_peft_model(model, peft_config)
    except ValueError as e:
        if isinstance(e, ConfigError):
            raise
        raise ConfigError(str(e)) from None


def needs_pmrc(method_cfg: Mapping) -> bool:
    """True if building this method clusters rows (ID-LoRA with PMRC selection): the slow, cached set-up step."""
    cfg = _plain(method_cfg)
    return cfg.get("name") == "idlora" and cfg.get("selection", "pmrc") == "pmrc"


def count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts; shared tensors counted once."""
    seen, trainable, total = set(), 0, 0
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel()
        trainable += p.numel() if p.requires_grad else 0
    return trainable, total
