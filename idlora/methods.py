"""One function builds any method of the paper from a method config (Hydra's ``method`` group or a dict).

    apply_method(model, {"name": "idlora", "r": 128, "alpha": 256, "dropout": 0.05, "k": 4, ...})

Methods: ``idlora`` (ours), ``lora`` and ``dora`` (PEFT's own, ``use_dora=True``), ``hydralora`` and
``moelora`` (own PEFT methods, docs/DESIGN.md §2), ``fft`` (full fine-tuning: every weight trainable), ``lori``
(LoRI, the baseline the paper's reviewers asked for; not in the paper's tables, marked as ours), and the baselines
PEFT ships (issue 20; marked as ours too): ``vera`` (VeRA), ``vblora`` (VB-LoRA), ``lorafa`` (LoRA-FA: PEFT's LoRA with
A frozen, trained by PEFT's LoRA-FA optimizer through its recipe, ``training/recipes.py``) and ``lily`` (Lily: a
router over several B's shared across layers on A·x). Each is PEFT's own class, not re-implemented here.
All adapters target the same modules (the paper's q,k,v,o,gate,up,down by default).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from peft import LilyConfig, LoraConfig, VBLoRAConfig, VeraConfig, get_peft_model

from .errors import ConfigError
from .tuners import HydraLoRAConfig, IDLoRAConfig, LoRIConfig, MoELoRAConfig
from .tuners._base import PAPER_TARGETS
from .tuners._routed import IMPLS

METHODS = ("idlora", "lora", "dora", "hydralora", "moelora", "fft", "lori", "vera", "vblora", "lorafa", "lily")
# The one list of the methods' labels, in the order the tables list them (the paper's: FFT first, ID-LoRA last; then
# LoRI, the baseline the reviewers asked for, and the PEFT baselines of issue 20, which the tables of results mark
# "(ours)": the paper has no numbers for them).
LABELS = {"fft": "FFT", "lora": "LoRA", "dora": "DoRA", "hydralora": "HydraLoRA", "moelora": "MoELoRA",
          "idlora": "ID-LoRA", "lori": "LoRI", "vera": "VeRA", "vblora": "VB-LoRA", "lorafa": "LoRA-FA",
          "lily": "Lily"}
TABLE_ORDER = tuple(LABELS)
PEFT_BASELINES = ("vera", "vblora", "lorafa", "lily")  # the reviewers' baselines PEFT ships: its own classes
BEYOND_PAPER = ("lori", *PEFT_BASELINES)
# Not a method: the untrained model (``method=base``), the base row of the tables of results; nothing trains.
BASE = "base"
assert set(LABELS) == set(METHODS)


def table_label(method: str) -> str:
    """The label of ``method`` in a table of results: ``LABELS``, with "(ours)" for a method the paper lacks."""
    return LABELS[method] + (" (ours)" if method in BEYOND_PAPER else "")

# Keys each method accepts besides ``seed`` (every method's: ``apply_peft_config``). An adapter's rank and targets
# (``_ADAPTER``); LoRA's alpha (scaling alpha / r) and dropout are specific too: VeRA and VB-LoRA have no scaling, Lily
# neither a scaling by rank nor a dropout. Full fine-tuning has no adapter, so none of them (``_NO_ADAPTER``).
_ADAPTER = ("r", "target_modules")
_LORA_LIKE = (*_ADAPTER, "alpha", "dropout")
_SPECIFIC = {
    "idlora": (*_LORA_LIKE, "k", "selection", "rank_boosting", "rb_parts", "router", "dropout_position",
               "pmrc_backend", "pmrc_restarts"),
    "lora": _LORA_LIKE,
    "dora": _LORA_LIKE,
    "hydralora": (*_LORA_LIKE, "n_experts"),
    "moelora": (*_LORA_LIKE, "n_experts"),
    "fft": (),
    "lori": (*_LORA_LIKE, "sparsity"),
    "vera": (*_ADAPTER, "dropout", "d_initial"),  # seed: VeRA's projection_prng_key (its frozen random A and B)
    "vblora": (*_ADAPTER, "dropout", "num_vectors", "vector_length", "topk"),
    "lorafa": _LORA_LIKE,
    "lily": (*_ADAPTER, "scaling", "stride_A", "num_B"),
}
_NO_ADAPTER = ("fft",)
# Parameters frozen after the adapter is built, by name fragment: LoRA-FA is LoRA with A frozen at its random init
# (PEFT's create_lorafa_optimizer freezes them too; freezing here makes every count, Table 6's included, say so).
_FROZEN = {"lorafa": ("lora_A",)}
# Keys the training loop reads, not the adapter (LoRI-S trains at sparse_lr_multiplier x the lr, as LoRI's recipe).
_TRAINING_ONLY = {"lori": ("sparse_lr_multiplier",)}
_COMMON = ("seed",)
# ``impl`` (``tuners._routed.IMPLS``): whose forward computes the method, ours or ``official``, the official code's
# order of operations for the same function, timed beside ours in Figure 3 (idlora/tuners/_routed.py). Only the
# methods listed here have a choice, and only their files set it; elsewhere ``ours`` (what runs recorded before the
# key left those files carry) is accepted and means nothing else.
OFFICIAL_IMPLS = ("hydralora", "moelora")


def _check_impl(name: str, impl) -> None:
    if impl not in (None, *IMPLS):
        raise ConfigError(f"method.impl={impl!r} is not valid; valid: {', '.join(IMPLS)}.")
    if impl == "official" and name not in OFFICIAL_IMPLS:
        raise ConfigError(f"method {name!r} has no official implementation to run (method.impl=official); only "
                          f"{', '.join(OFFICIAL_IMPLS)} have one. Remove the override or set method.impl=ours.")


def _plain(cfg: Mapping) -> dict[str, Any]:
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)
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
    impl = cfg.pop("impl", None)
    _check_impl(name, impl)
    known = set(_COMMON) | set(_SPECIFIC[name])
    unused = {k: v for k, v in cfg.items() if k not in known | set(_TRAINING_ONLY.get(name, ())) and v is not None}
    if unused and name in _NO_ADAPTER:
        raise ConfigError(f"method {name!r} trains every weight of the model, with no adapter: "
                          f"{', '.join(f'method.{k}' for k in sorted(unused))} would set nothing. Remove the "
                          "override(s), or choose an adapter method (e.g. method=lora).")
    if unused:
        raise ConfigError(
            f"method {name!r} does not take {sorted(unused)}; it takes {sorted(known)}. Remove the override(s)."
        )
    kw = {k: v for k, v in cfg.items() if k in known and v is not None}
    if name in OFFICIAL_IMPLS and impl is not None:
        kw["impl"] = impl
    if name in _NO_ADAPTER:
        return None
    targets = list(kw.pop("target_modules", PAPER_TARGETS))
    common = dict(target_modules=targets, task_type="CAUSAL_LM")
    try:
        return _BUILDERS[name](name, kw, common)
    except ValueError as e:
        raise ConfigError(str(e)) from None


def _lora(name: str, kw: dict, common: dict):
    """PEFT's LoRA: LoRA, DoRA (``use_dora``) and LoRA-FA (LoRA whose A ``apply_method`` freezes)."""
    r = kw.get("r", 8)
    return LoraConfig(r=r, lora_alpha=kw.get("alpha", 2 * r), lora_dropout=kw.get("dropout", 0.0),
                      use_dora=(name == "dora"), **common)


def _vera(name: str, kw: dict, common: dict):
    """PEFT's VeRA: frozen random A (r, max d_in) and B (max d_out, r) shared by every layer (sliced to each layer's
    shape), trainable scaling vectors lambda_d (r) and lambda_b (d_out, zero-initialised) per layer; the projections
    are drawn from ``seed`` (PEFT's ``projection_prng_key``) and saved with the adapter."""
    return VeraConfig(r=kw.get("r", 256), vera_dropout=kw.get("dropout", 0.0), d_initial=kw.get("d_initial", 0.1),
                      projection_prng_key=int(kw.get("seed", 0)), save_projection=True, **common)


def _vblora(name: str, kw: dict, common: dict):
    """PEFT's VB-LoRA: every sub-vector of length ``vector_length`` of each A and B is a top-``topk`` softmax mixture
    of a bank of ``num_vectors`` vectors shared by the whole model; trainable: the bank and the per-layer logits."""
    return VBLoRAConfig(r=kw.get("r", 4), num_vectors=kw.get("num_vectors", 256),
                        vector_length=kw.get("vector_length", 256), topk=kw.get("topk", 2),
                        vblora_dropout=kw.get("dropout", 0.0), **common)


def _lily(name: str, kw: dict, common: dict):
    """PEFT's Lily: an A per ``stride_A`` consecutive layers, ``num_B`` B's shared by all layers of a target, mixed by
    a per-layer router on A x (PEFT averages the router's softmax over the batch's tokens); output x ``scaling``."""
    return LilyConfig(r=kw.get("r", 32), scaling=float(kw.get("scaling", 1.0)), stride_A=kw.get("stride_A", 1),
                      num_B=kw.get("num_B", 2), **common)


def _own(name: str, kw: dict, common: dict):
    """The PEFT methods of this package (ID-LoRA, HydraLoRA, MoELoRA, LoRI)."""
    cls = {"idlora": IDLoRAConfig, "hydralora": HydraLoRAConfig, "moelora": MoELoRAConfig, "lori": LoRIConfig}[name]
    return cls(**kw, **common)


_BUILDERS = {"lora": _lora, "dora": _lora, "lorafa": _lora, "vera": _vera, "vblora": _vblora, "lily": _lily,
             **{m: _own for m in ("idlora", "hydralora", "moelora", "lori")}}
assert set(_BUILDERS) == set(METHODS) - {"fft"}


def apply_method(model: torch.nn.Module, method_cfg: Mapping, seed: int | None = None):
    """Return ``model`` adapted by the method (a ``PeftModel``), or the model itself: all trainable for ``fft``,
    frozen for ``base``. ``seed``: see ``apply_peft_config``."""
    return apply_peft_config(model, method_cfg, build_peft_config(method_cfg), seed=seed)


def apply_peft_config(model: torch.nn.Module, method_cfg: Mapping, peft_config, seed: int | None = None):
    """``apply_method`` with the method's PEFT config already built (``build_peft_config``; the training loop builds
    it once per run). One seed rule for every method: ``method.seed`` (``${seed}`` in every method file) seeds what
    the method draws, PEFT's own initialisation from the global generator (LoRA's and DoRA's A) as well as what the
    method's config seeds itself (ID-LoRA's PMRC and router, VeRA's projections); ``seed`` is for a method config
    without one, and may not contradict it."""
    cfg = _plain(method_cfg)
    if seed is not None and cfg.get("seed") not in (None, seed):
        raise ConfigError(f"seed={seed} contradicts method.seed={cfg['seed']}; a method draws from method.seed alone "
                          "(set seed=N, which method.seed follows).")
    torch.manual_seed(int(cfg.get("seed") or 0) if seed is None else seed)
    if peft_config is None:
        model.requires_grad_(cfg.get("name") != BASE)
        return model
    try:
        model = get_peft_model(model, peft_config)
    except ValueError as e:
        if isinstance(e, ConfigError):
            raise
        raise ConfigError(str(e)) from None
    frozen = _FROZEN.get(cfg.get("name"), ())
    for name, p in model.named_parameters():
        if any(f in name for f in frozen):
            p.requires_grad_(False)
    return model


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
