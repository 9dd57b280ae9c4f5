"""Per-layer random generators: every layer's initialisation (and PMRC's random ablations) reproducible on its own."""

from __future__ import annotations

import torch


def layer_generator(seed: int, key: str) -> torch.Generator:
    """A generator seeded from (seed, module name): every layer's init is reproducible on its own."""
    import zlib

    return torch.Generator().manual_seed((seed * 1_000_003 + zlib.crc32(key.encode())) % (2**63))
