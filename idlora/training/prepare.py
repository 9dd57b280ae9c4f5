"""Single-process work before a (distributed) run: the PMRC cache of its model.

A distributed run builds its adapter on rank 0 first, while the other ranks wait; with an uncached 8B model that
is a full clustering (minutes on a GPU, ~17 min on one CPU thread, which is what torchrun gives each rank) under
the process group's timeout. ``precompute_pmrc`` does it beforehand in one process, on the GPU when there is one,
through the same code path as training (the same weights as loaded for training, so the same cache keys).
"""

from __future__ import annotations

import time

from omegaconf import DictConfig

from ..methods import apply_method, needs_pmrc
from ..models import load_model_and_tokenizer


def precompute_pmrc(cfg: DictConfig) -> bool:
    """Cluster and cache every targeted matrix of ``cfg``'s model for its method; False if the method has no PMRC."""
    if not needs_pmrc(cfg.method):
        print(f"{cfg.run_id}: method {cfg.method.name} (selection {cfg.method.get('selection')}) needs no PMRC")
        return False
    start = time.time()
    model, _ = load_model_and_tokenizer(cfg.model)
    apply_method(model, cfg.method)  # seeded by method.seed, as training; clusters what the cache lacks, and caches it
    print(f"{cfg.run_id}: PMRC rows of {cfg.model.name} (k={cfg.method.k}, r={cfg.method.r}) cached "
          f"in {time.time() - start:.0f} s")
    return True
