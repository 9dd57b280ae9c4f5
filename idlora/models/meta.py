"""Models on the meta device: a model's real shapes from its shipped ``configs/hf/<name>/config.json``, no weights,
no memory, no download. Table 6 counts adapters on them, the benchmarks size memory with them, and training checks
an adapter's shapes on one before loading any weight."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM

from ..config import CONFIG_DIR

HF_CONFIG_DIR = CONFIG_DIR / "hf"  # the shipped config.json of each paper model, by name


def meta_from_config(hf_config):
    """The model of a transformers config on the meta device."""
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(hf_config)


def meta_model(name: str, config_dir: Path = HF_CONFIG_DIR):
    """The model of ``configs/hf/<name>/config.json`` on the meta device: real shapes, no memory."""
    path = Path(config_dir) / name
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"no model config {path / 'config.json'}; shipped: "
                                f"{sorted(p.name for p in Path(config_dir).iterdir() if p.is_dir())}")
    return meta_from_config(AutoConfig.from_pretrained(path))
