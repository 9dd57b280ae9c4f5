"""PMRC cost: the torch backend against the reference (``k-means-constrained``) on the same matrices.

Reported by ``make bench`` (keys of results/bench/efficiency.json): ``pmrc_speedup`` (reference seconds / torch
seconds, summed over every targeted matrix of the model, at the model's scale's settings), ``pmrc_objective_ratio``
(summed k-means objectives, torch / reference; ``pmrc_objective_ratio_max``: the largest per-matrix ratio), and
``pmrc_seconds_llama3_8b_estimate_<backend>``: one matrix of each distinct LLaMA-3-8B projection shape (random
values, real shapes: the real weights need a download; the shapes are ``pmrc_cost.projection_shapes``, from
``configs/hf/llama3_8b/config.json``) is clustered and the times are extrapolated to all 224 matrices (32 layers x
q,k,v,o,gate,up,down; torch at the paper scale's ``pmrc_restarts``). ``make pmrc_cost`` times the torch backend on
every one of the 224 instead; real weights may converge in a different number of iterations than random ones.
"""

from __future__ import annotations

import time

import torch
from tqdm.auto import tqdm

from .. import pmrc
from ..methods import PAPER_TARGETS
from ..pmrc import kmeans as pmrc_kmeans
from .pmrc_cost import paper_restarts, projection_shapes

TARGETS = tuple(PAPER_TARGETS)


def _time(fn) -> tuple[float, float]:
    start = time.perf_counter()
    _, _, objective = fn()
    return time.perf_counter() - start, objective


def pmrc_comparison(model: torch.nn.Module, k: int, r: int, quick: bool = False, seed: int = 0) -> dict[str, float]:
    weights = [m.weight.detach() for n, m in model.named_modules()
               if isinstance(m, torch.nn.Linear) and n.rsplit(".", 1)[-1] in TARGETS]
    if quick:
        weights = weights[:3]
    t_ref, refs = 0.0, []
    for W in tqdm(weights, desc="bench: PMRC reference", unit="matrix"):
        t, o = _time(lambda: pmrc_kmeans.reference_kmeans(W, k, r, seed))
        t_ref, refs = t_ref + t, refs + [o]
    start = time.perf_counter()
    clustered = pmrc.cluster_batch(weights, k, r, seed)
    t_torch = time.perf_counter() - start
    ours = [objective for _, _, objective in clustered]
    out = {"pmrc_speedup": t_ref / t_torch, "pmrc_objective_ratio": sum(ours) / sum(refs),
           "pmrc_objective_ratio_max": max(o / ref for o, ref in zip(ours, refs)),
           "pmrc_seconds_model_reference": t_ref, "pmrc_seconds_model_torch": t_torch,
           "pmrc_matrices": float(len(weights))}
    # {(d_out, d_in): how many matrices of that shape}: LLaMA-3-8B's, from configs/hf/llama3_8b (as make pmrc_cost)
    shapes = {(256, 128): 1} if quick else projection_shapes("llama3_8b")
    gen = torch.Generator().manual_seed(seed)
    est = {"reference": 0.0, "torch": 0.0}
    for (d_out, d_in), count in tqdm(shapes.items(), desc="bench: PMRC LLaMA-3-8B shapes", unit="shape"):
        W = torch.randn(d_out, d_in, generator=gen)
        rr = min(128, d_out // k) if not quick else 16
        est["reference"] += count * _time(lambda: pmrc_kmeans.reference_kmeans(W, k, rr, seed))[0]
        est["torch"] += count * _time(lambda: pmrc.cluster(W, k, rr, seed, "torch", paper_restarts()))[0]
    for backend, seconds in est.items():
        out[f"pmrc_seconds_llama3_8b_estimate_{backend}"] = seconds
    out["pmrc_seconds_llama3_8b_estimate"] = out["pmrc_seconds_llama3_8b_estimate_torch"]
    return out
