"""The precision a run computes in: one rule, asked by training and by scoring (generation and log-likelihoods).

``train.mixed_precision``: ``auto`` | ``bf16`` | ``fp16`` | ``no``. ``auto`` is bf16 where the device computes bf16
natively — a CUDA GPU that supports it, or a CPU with bf16 dot-product instructions (x86 AVX512_BF16 or AMX-BF16,
ARM BF16 or SVE-BF16, as ``torch.cpu.get_capabilities()`` reports them) — and ``no`` (fp32) elsewhere. Mixed
precision is autocast, as Accelerate does it: weights and optimizer state keep their own dtype (fp32 at mini scale)
and the matrix products run in bf16. ``no`` turns it off on every device.

    used = precision.resolve(cfg.train.mixed_precision, device)    # "bf16" | "fp16" | "no"
    with precision.autocast(used, device): ...                     # scoring in the run's precision
"""

from __future__ import annotations

import contextlib

import torch

from ..errors import ConfigError

SETTINGS = ("auto", "bf16", "fp16", "no")
# CPU features that make bf16 products native (not emulated through fp32): torch.cpu.get_capabilities()'s keys
NATIVE_BF16_CPU = ("avx512_bf16", "amx_bf16", "bf16", "sve_bf16")
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def check(setting: str) -> str:
    """``setting`` if it is one of ``SETTINGS``, else one clear error (checked before any work)."""
    if setting not in SETTINGS:
        raise ConfigError(f"train.mixed_precision={setting!r} is not valid; choose one of: {', '.join(SETTINGS)} "
                          "(auto: bf16 where the device has native bf16, else no; no: fp32 throughout).")
    return setting


def native_bf16_features() -> list[str]:
    """The CPU's native bf16 features (empty on a CPU without them)."""
    caps = torch.cpu.get_capabilities()
    return [f for f in NATIVE_BF16_CPU if caps.get(f)]


def _device_type(device) -> str:
    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device).type


def resolve(setting: str, device=None) -> str:
    """What ``setting`` means on ``device`` (default: the first GPU if any, else the CPU): bf16, fp16 or no."""
    if check(setting) != "auto":
        return setting
    kind = _device_type(device)
    if kind == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "no"
    if kind == "cpu":
        return "bf16" if native_bf16_features() else "no"
    return "no"


def decision(setting: str, device=None) -> dict:
    """The rule's answer with its reason, as a results file records it."""
    kind, used = _device_type(device), resolve(setting, device)
    if setting != "auto":
        why = f"train.mixed_precision={setting}"
    elif kind == "cpu":
        features = native_bf16_features()
        why = f"CPU with native bf16 ({', '.join(features)})" if features else "CPU without native bf16"
    else:
        why = f"{kind} device" + ("" if kind != "cuda" else f" (bf16 supported: {torch.cuda.is_bf16_supported()})")
    return {"setting": setting, "used": used, "device": kind, "why": why}


def autocast(used: str, device=None):
    """A context computing in ``used`` (``resolve``'s answer) on ``device``: autocast for bf16/fp16, nothing for no."""
    if used == "no":
        return contextlib.nullcontext()
    return torch.autocast(_device_type(device), dtype=DTYPES[used])


def autocast_dtype(device=None) -> torch.dtype | None:
    """The dtype of the autocast in effect on ``device`` here (None outside one): what a scorer that opens its own
    autocast (lm-eval's ``HFLM(mixed_precision_dtype=...)``, which otherwise turns an enclosing one off) must be given."""
    kind = _device_type(device)
    return torch.get_autocast_dtype(kind) if torch.is_autocast_enabled(kind) else None


@contextlib.contextmanager
def scoring(used: str, model):
    """Scoring (no gradients) in ``used`` on ``model``'s device, each weight cast once for the whole context.
    Autocast caches its bf16 copy of a weight only when the weight requires grad; a frozen model's weights would be
    cast again at every call, once per decoding step (measured on SmolLM2, 16 rows x 24 greedy tokens, one thread:
    fp32 4.0 s, bf16 autocast 5.1 s, bf16 with the casts cached 2.5 s). So the frozen floating-point weights are
    flagged for the context's length (under ``torch.no_grad``: no gradient is ever made) and unflagged after."""
    if used == "no":
        with torch.no_grad():
            yield
        return
    device = next(model.parameters()).device
    flagged = [p for p in model.parameters() if p.is_floating_point() and not p.requires_grad]
    try:
        for p in flagged:
            p.requires_grad_(True)
        with torch.no_grad(), autocast(used, device):
            yield
    finally:
        for p in flagged:
            p.requires_grad_(False)
