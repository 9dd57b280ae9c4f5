"""PMRC's preprocessing cost per model and backend (``make pmrc_cost``; a reviewer's question, beyond the paper).

For each model the targeted projections (q, k, v, o, gate, up, down of every layer) are read from its
``config.json`` (``configs/hf/<model>/``). One matrix of each distinct shape is clustered with each backend
(random values of the real shape: the real weights need a download; real weights may converge in a different
number of iterations) and the time is extrapolated to all the model's matrices; the peak memory is the largest
increase of resident memory while clustering one matrix, measured in a fresh (spawned) child process. SmolLM2-135M
(the mini model) is measured on its real weights, every matrix, when its cached weights are present.

Writes ``results/bench/pmrc_cost.json``; ``idlora.reports.tables.pmrc_cost`` builds
``results/tables/table_pmrc_cost.{md,tex,json}`` from it.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import resource
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..config import CONFIG_DIR, load_group
from ..errors import ConfigError
from ..files import atomic_write_json
from ..methods import PAPER_TARGETS
from ..models import load_model_and_tokenizer

BACKENDS = ("reference", "torch")
MODELS = {"llama3_8b": 128, "mistral_7b": 128, "llama32_3b": 128}  # model -> the paper's r (k = 4)
K = 4


def projection_shapes(model: str) -> dict[tuple[int, int], int]:
    """{(d_out, d_in): count} of the targeted projections of a model, from its config.json."""
    path = CONFIG_DIR / "hf" / model / "config.json"
    if not path.exists():
        raise ConfigError(f"no config for model {model!r} at {path}")
    c = json.loads(path.read_text())
    h, inter, layers = c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"]
    hd = c.get("head_dim") or h // c["num_attention_heads"]
    q, kv = c["num_attention_heads"] * hd, c["num_key_value_heads"] * hd
    shapes: dict[tuple[int, int], int] = {}
    for shape in [(q, h), (kv, h), (kv, h), (h, q), (inter, h), (inter, h), (h, inter)]:
        shapes[shape] = shapes.get(shape, 0) + layers
    return shapes


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def _random_matrix(d_out: int, d_in: int, seed: int) -> torch.Tensor:
    return torch.randn(d_out, d_in, generator=torch.Generator().manual_seed(seed))


def _select_timed(W: torch.Tensor, r: int, backend: str, restarts, seed: int = 0) -> tuple[float, float]:
    """(seconds, objective) of PMRC on W as ID-LoRA's set-up runs it: the clustering and the r rows per cluster."""
    # imported here, in the spawned child after its baseline memory is read (_child_one): the peak memory measured
    # includes the import, as in every measurement on file
    from .. import pmrc
    from ..pmrc import kmeans as pmrc_kmeans

    start = time.perf_counter()
    labels, centers, objective = pmrc.cluster(W, K, r, seed, backend, restarts)
    pmrc_kmeans.select_nearest_rows(W, labels, centers, r)
    return time.perf_counter() - start, objective


def _child_one(d_out, d_in, r, backend, restarts, seed):
    W = _random_matrix(d_out, d_in, seed)
    base = _rss_bytes()
    seconds, objective = _select_timed(W, r, backend, restarts, seed)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"seconds": seconds, "peak_bytes": max(0, peak - base), "objective": objective}


def _child_all(shapes, r, restarts):
    """Every matrix of a model (``shapes``: [(d_out, d_in, count)]), random, the j-th of a shape seeded j: the
    0-th is the matrix ``measure`` clusters. Matrix generation is not timed."""
    out = {"seconds": 0.0, "seconds_per_shape": {}, "objective_first": {}}
    for d_out, d_in, count in shapes:
        total = 0.0
        for j in range(count):
            seconds, objective = _select_timed(_random_matrix(d_out, d_in, j), min(r, d_out // K), "torch", restarts)
            total += seconds
            if j == 0:
                out["objective_first"][f"{d_out}x{d_in}"] = objective
        out["seconds_per_shape"][f"{d_out}x{d_in}"] = total
        out["seconds"] += total
    return out


def _child(conn, fn, args):
    conn.send(fn(*args))
    conn.close()


def _spawned(fn, args, what: str):
    """``fn(*args)`` in a fresh (spawned) child process: its memory is measured from a clean start.

    Spawned, not forked: a fork of a process whose torch/OpenMP thread pool has run can deadlock in the child
    (seen: a child waiting on a futex for 11 min in the test suite)."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    p = ctx.Process(target=_child, args=(child, fn, args))
    p.start()
    child.close()
    try:
        while not parent.poll(1.0):
            if not p.is_alive():
                raise RuntimeError(f"PMRC cost: the child clustering {what} exited with code {p.exitcode} before "
                                   "reporting.")
        out = parent.recv()
    finally:
        p.join(timeout=60)
        if p.is_alive():
            p.kill()
    return out


def measure(d_out: int, d_in: int, r: int, backend: str, seed: int = 0, restarts: int | None = None) -> dict:
    """Time, peak extra memory and objective of PMRC on one random (d_out, d_in) matrix, in a fresh child."""
    return _spawned(_child_one, (d_out, d_in, r, backend, restarts, seed), f"a {d_out}x{d_in} matrix ({backend})")


def measure_all(model: str, r: int, restarts: int | None, shapes=None) -> dict:
    """The torch backend on every targeted matrix of ``model`` (random values of the real shapes), in a fresh child:
    total seconds (what set-up costs, not an extrapolation) and the objective of each shape's first matrix."""
    shapes = shapes or projection_shapes(model)
    return _spawned(_child_all, ([(a, b, n) for (a, b), n in shapes.items()], r, restarts), f"every {model} matrix")


def paper_restarts() -> int | None:
    """The paper scale's ``pmrc_restarts`` (what ``scale=paper`` clusters with)."""
    return load_group("scale", "paper").get("pmrc_restarts")


def model_cost(model: str, r: int, backends=BACKENDS, cache: dict | None = None, every_matrix: bool = False,
               shapes=None, restarts: int | None = None) -> dict:
    """Seconds and peak memory to cluster every targeted matrix of ``model`` (torch: with ``restarts``), one matrix
    of each shape per backend: the torch/reference objective ratio on the same matrix, the time extrapolated to all.
    ``every_matrix``: the torch backend's time measured on all of them instead."""
    shapes = shapes or projection_shapes(model)
    cache = {} if cache is None else cache
    out = {"matrices": sum(shapes.values()), "r": r, "k": K, "restarts_torch": restarts,
           "shapes": {f"{a}x{b}": n for (a, b), n in shapes.items()}}
    per_shape = {}
    for backend in backends:
        total, peak = 0.0, 0
        for (d_out, d_in), n in shapes.items():
            key = (d_out, d_in, min(r, d_out // K), backend, 0, restarts if backend == "torch" else None)
            if key not in cache:  # models sharing a shape (LLaMA-3-8B, Mistral-7B) share the measurement
                cache[key] = measure(*key)
            total += n * cache[key]["seconds"]
            peak = max(peak, cache[key]["peak_bytes"])
            per_shape.setdefault(f"{d_out}x{d_in}", {})[backend] = cache[key]["objective"]
        out[f"seconds_{backend}"] = total
        out[f"peak_mib_{backend}"] = peak / 2**20
    out["torch_timing"] = "one matrix per shape, extrapolated"
    if every_matrix and "torch" in backends:
        key = ("every matrix", tuple(shapes.items()), r, restarts)
        if key not in cache:  # Mistral-7B has LLaMA-3-8B's shapes: the same random matrices, measured once
            cache[key] = measure_all(model, r, restarts, shapes)
        full = cache[key]
        out["seconds_torch"], out["seconds_torch_per_shape"] = full["seconds"], full["seconds_per_shape"]
        out["torch_timing"] = "every matrix, measured"
    if set(backends) == set(BACKENDS):
        out["objective_ratio_per_shape"] = {s: o["torch"] / o["reference"] for s, o in per_shape.items()}
        out["objective_ratio_max"] = max(out["objective_ratio_per_shape"].values())
    return out


def smollm2_cost(r: int = 32) -> dict:
    """SmolLM2-135M on its real weights, every targeted matrix, both backends (torch at the mini scale's restarts,
    the backend's default; and at the paper scale's, for its objective on real weights): time and the largest
    per-matrix torch/reference objective ratio."""

    model = load_model_and_tokenizer(load_group("model", "smollm2_135m"))[0]
    weights = [m.weight.detach().float() for n, m in model.named_modules() if n.rsplit(".", 1)[-1] in PAPER_TARGETS]
    del model
    out = {"matrices": len(weights), "r": r, "k": K, "restarts_torch": None, "torch_timing": "every matrix, measured",
           "measured": "real weights, every matrix"}
    objectives, paper = {}, paper_restarts()
    for backend, restarts in (("reference", None), ("torch", None), ("torch", paper)):
        seconds, objectives[backend, restarts] = 0.0, []
        for W in weights:
            t, objective = _select_timed(W, r, backend, restarts)
            seconds, objectives[backend, restarts] = seconds + t, objectives[backend, restarts] + [objective]
        if (backend, restarts) != ("torch", paper):
            out[f"seconds_{backend}"], out[f"peak_mib_{backend}"] = seconds, None
        else:
            out["seconds_torch_paper_restarts"] = seconds
    ref = objectives["reference", None]
    out["objective_ratio_max"] = max(t / o for t, o in zip(objectives["torch", None], ref))
    out["objective_ratio_max_paper_restarts"] = max(t / o for t, o in zip(objectives["torch", paper], ref))
    return out


def run(out_json: str | Path = "results/bench/pmrc_cost.json", models=tuple(MODELS), quick: bool = False) -> dict:
    """Measure every model of ``models`` and write ``out_json`` (its table: ``reports.tables.pmrc_cost``)."""
    results, cache = {}, {}
    if not quick:
        results["smollm2_135m"] = smollm2_cost()
    restarts = paper_restarts()
    for m in tqdm(models, desc="PMRC cost", unit="model"):
        shapes = projection_shapes(m)
        if quick:  # a seconds-long stand-in for tests: the same code path on 1/64-scale shapes
            shapes = {(max(32, a // 64), max(16, b // 64)): n for (a, b), n in shapes.items()}
        results[m] = model_cost(m, 4 if quick else MODELS[m], cache=cache, every_matrix=True, shapes=shapes,
                                restarts=restarts)
    doc = {"k": K, "quick": quick, "models": results,
           "note": "LLaMA-3-8B, Mistral-7B, LLaMA-3.2-3B (random values, the real shapes): the torch backend timed "
           "on every matrix, at the paper scale's restarts (scale.pmrc_restarts); the reference on one matrix of each "
           "distinct shape, its time extrapolated to every matrix; the objective ratio (torch / reference) on that "
           "same matrix, the largest over shapes. SmolLM2: real weights, every matrix, the mini scale's restarts "
           "(the torch backend's default, 3).",
           "provenance": {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "threads": torch.get_num_threads(),
                          "torch": torch.__version__}}
    atomic_write_json(out_json, doc)
    return doc
