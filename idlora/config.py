"""Hydra configuration: composing a run's config, and applying its scale.

A scale is a config group (``configs/scale/``), not a branch in the code: it names the model that replaces
the experiment's (``scale.model``; ``null`` keeps it), the data source, ranks and budgets. ``resolve`` swaps
the model group accordingly and records the experiment's own model as ``paper_model``.
"""

from __future__ import annotations

import copy
import functools
import re
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from .errors import ConfigError

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
# At tiny scale a Mistral experiment runs on the tiny Mistral, everything else on the tiny LLaMA.
TINY_MODELS = {"mistral_7b": "tiny_mistral"}

if not OmegaConf.has_resolver("mul"):
    OmegaConf.register_new_resolver("mul", lambda a, b: a * b)


def group_options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))


def load_group(group: str, name: str) -> DictConfig:
    path = CONFIG_DIR / group / f"{name}.yaml"
    if not path.exists():
        raise ConfigError(f"unknown {group} {name!r}; valid: {', '.join(group_options(group))}")
    return OmegaConf.load(path)


def resolve(cfg: DictConfig, overrides: list[str] | None = None) -> DictConfig:
    """Apply the scale's model mapping and check every value that can be checked without loading anything;
    ``overrides`` (the command line's) are checked for one the scale would silently replace (``check_lr_override``)."""
    with open_dict(cfg):
        paper_model = cfg.model.name
        cfg.paper_model = paper_model
        target = cfg.scale.get("model")
        if cfg.scale.name == "tiny":
            target = TINY_MODELS.get(paper_model, target)
        if target and target != paper_model and paper_model not in ("tiny_llama", "tiny_mistral"):
            cfg.model = load_group("model", target)
    for group in ("method",):
        name = cfg[group].name
        if name not in group_options(group):
            raise ConfigError(f"unknown {group} {name!r}; valid: {', '.join(group_options(group))}")
    try:
        OmegaConf.resolve(cfg)
    except Exception as e:  # interpolation errors name the key; make them user errors
        raise ConfigError(f"config does not resolve: {e}") from None
    if OmegaConf.select(cfg, "train.gradient_checkpointing") == "auto":
        cfg.train.gradient_checkpointing = per_method(cfg, "gradient_checkpointing", False)
    check_values(cfg)
    check_lr_override(cfg, overrides or [])
    return cfg


def check_lr_override(cfg: DictConfig, overrides: list[str]) -> None:
    """Refuse ``train.lr=X`` on the command line where the scale fixes the method's lr (``scale.lr``, e.g. mini): it
    would be ignored without a word. The message names the override that does take effect."""
    # the value of the last-given train.lr=X (or +train.lr=X); a deletion (~train.lr) sets no lr
    want = next((o.split("=", 1)[1] for o in reversed(overrides) if o.lstrip("+").split("=")[0] == "train.lr"
                 and "=" in o), None)
    if want is not None:
        fixed = per_method(cfg, "lr", None)
        if fixed is not None:
            raise ConfigError(f"train.lr={want} has no effect at scale={cfg.scale.name}: the scale trains "
                              f"{cfg.method.name} at its own lr ({fixed}; scale.lr in configs/scale/"
                              f"{cfg.scale.name}.yaml). Set +scale.lr.{cfg.method.name}={want} instead.")


def per_method(cfg: DictConfig, key: str, fallback):
    """A scale's per-method setting ``scale.<key>``: the method's own entry, else ``default``, else ``fallback``."""
    table = cfg.scale.get(key) or {}
    return table.get(cfg.method.name, table.get("default", fallback))


def effective_lr(cfg: DictConfig) -> float:
    """The learning rate the experiment gives a run: the scale's own for the method (``scale.lr``: the method's entry,
    else ``default``) when the scale sets one, else the experiment's (the paper's Tables 4, 5). A method may train at
    a multiple of it (LoRI-S: its recipe, ``idlora.training.recipes.train_lr``)."""
    fixed = per_method(cfg, "lr", None)
    return float(cfg.train.lr if fixed is None else fixed)


# Types and ranges of the values users set on the command line (method values are checked by their PEFT config).
_CHECKS = {
    "a positive integer": ("train.batch_size", "train.micro_batch_size", "train.max_length", "train.epochs",
                         "eval.batch_size", "eval.max_new_tokens"),
    "a positive integer or null": ("train.max_steps", "train.schedule_steps", "eval.limit", "eval.humaneval_problems",
                                 "eval.humaneval_samples", "eval.humaneval_max_new_tokens",
                                 "eval.hexphi_max_new_tokens"),
    "an integer >= 0": ("seed", "train.save_steps", "train.warmup_steps", "train.keep_checkpoints", "train.log_steps"),
    "a positive number": ("train.lr",),
    "a number >= 0": ("train.weight_decay", "train.max_grad_norm", "eval.humaneval_temperature"),
    "true or false": ("train.resume", "train.wandb", "train.gradient_checkpointing", "evaluate_after_training"),
}


def _value_ok(kind: str, v) -> bool:
    is_int = isinstance(v, int) and not isinstance(v, bool)
    is_num = (is_int or isinstance(v, float)) and v == v  # not NaN
    return {"a positive integer": is_int and v > 0,
            "a positive integer or null": v is None or (is_int and v > 0),
            "an integer >= 0": is_int and v >= 0,
            "a positive number": is_num and v > 0,
            "a number >= 0": is_num and v >= 0,
            "true or false": isinstance(v, bool)}[kind]


def check_values(cfg: DictConfig) -> None:
    """One clear error for a value of the wrong type or range (e.g. ``train.lr=abc``), before any work."""
    for kind, keys in _CHECKS.items():
        for key in keys:
            missing = object()
            v = OmegaConf.select(cfg, key, default=missing)
            if v is missing:
                continue
            if not _value_ok(kind, v):
                raise ConfigError(f"{key}={v!r} is not valid: it must be {kind} (e.g. {key}=" +
                                  {"a positive number": "1e-4", "a number >= 0": "0.0", "true or false": "true"}.get(
                                      kind, "8") + ").")


def explain_hydra_error(e: Exception) -> str:
    """Hydra's message, plus the valid options when it is an unknown group option."""
    msg = str(e).splitlines()[0]
    m = re.search(r"Could not find '([\w/]+)/([^']+)'", msg)
    if m and (CONFIG_DIR / m.group(1)).is_dir():
        msg = f"unknown {m.group(1)} {m.group(2)!r}; valid: {', '.join(group_options(m.group(1)))}"
    return msg


def compose(overrides: list[str] | None = None, config_name: str = "train") -> DictConfig:
    """The resolved config for a list of command-line overrides, as ``scripts/train.py`` would see it: a fresh copy
    each call (callers may change it), composed once per process for each list (tables and claims compose the same
    runs many times; a Hydra compose costs ~0.2-0.4 s)."""
    return copy.deepcopy(_composed(tuple(overrides or []), config_name))


@functools.lru_cache(maxsize=2048)
def _composed(overrides: tuple[str, ...], config_name: str) -> DictConfig:
    # Hydra is imported on the first compose: most importers of this module (reports, runs) read configs already
    # composed, and Hydra's import costs a noticeable part of a second.
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException

    given = list(overrides)
    while True:
        try:
            with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
                cfg = hydra_compose(config_name=config_name, overrides=given)
            break
        except HydraException as e:
            given = _method_key_added(given, str(e))
            if given is None:
                raise ConfigError(explain_hydra_error(e)) from None
    return resolve(cfg, list(overrides))


def _method_key_added(overrides: list[str], message: str) -> list[str] | None:
    """``overrides`` with ``method.<key>=V`` turned into ``+method.<key>=V`` where Hydra refused it because the method's
    file has no such key (``impl`` on LoRA, ``k`` on LoRA, ``alpha`` on FFT): the method's own check then names what
    the method takes (``methods.build_peft_config``) instead of Hydra's bare "Could not override". None otherwise."""
    m = re.search(r"Could not override '(method\.\w+)'", message)
    if not m:
        return None
    key = m.group(1) + "="
    if not any(o.startswith(key) for o in overrides):
        return None
    return ["+" + o if o.startswith(key) else o for o in overrides]
