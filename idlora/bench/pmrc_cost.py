"""PMRC's preprocessing cost per model and backend (``make pmrc_cost``; a reviewer's question, beyond the paper).

For each model the targeted projections (q, k, v, o, gate, up, down of every layer) are read from its
``config.json`` (``configs/hf/<model>/``). One matrix of each distinct shape is clustered with each backend
(random values of the real shape: the real weights need a download; real weights may converge in a different
number of iterations) and the time is extrapolated to all the model's matrices; the peak memory is the largest
increase of resident memory while clustering one matrix, measured in a fresh (spawned) child process. SmolLM2-135M
(the mini model) is measured on its real weights, every matrix, when its cached weights are present.

Writes ``results/bench/pmrc_cost.json`` and ``results/tables/table_pmrc_cost.{md,tex,json}``.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import resource
import time
from pathlib import Path

import torch

from ..config import CONFIG_DIR
from ..errors import ConfigError
from ..files import atomic_write_json

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


def _child(conn, d_out, d_in, r, backend, seed):
    from ..pmrc import kmeans as pmrc_kmeans

    W = torch.randn(d_out, d_in, generator=torch.Generator().manual_seed(seed))
    base = _rss_bytes()
    start = time.perf_counter()
    fn = pmrc_kmeans.reference_kmeans if backend == "reference" else pmrc_kmeans.constrained_kmeans
    _, _, objective = fn(W, K, r, seed)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    conn.send({"seconds": seconds, "peak_bytes": max(0, peak - base), "objective": objective})
    conn.close()


def measure(d_out: int, d_in: int, r: int, backend: str, seed: int = 0) -> dict:
    """Time and peak extra memory of clustering one random (d_out, d_in) matrix, in a fresh child process.

    Spawned, not forked: a fork of a process whose torch/OpenMP thread pool has run can deadlock in the child
    (seen: a child waiting on a futex for 11 min in the test suite)."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    p = ctx.Process(target=_child, args=(child, d_out, d_in, r, backend, seed))
    p.start()
    child.close()
    try:
        while not parent.poll(1.0):
            if not p.is_alive():
                raise RuntimeError(f"PMRC cost: the child clustering a {d_out}x{d_in} matrix ({backend}) exited "
                                   f"with code {p.exitcode} before reporting.")
        out = parent.recv()
    finally:
        p.join(timeout=60)
        if p.is_alive():
            p.kill()
    return out


def model_cost(model: str, r: int, backends=BACKENDS, cache: dict | None = None) -> dict:
    """Estimated seconds and measured peak memory to cluster every targeted matrix of ``model``."""
    shapes = projection_shapes(model)
    cache = {} if cache is None else cache
    out = {"matrices": sum(shapes.values()), "r": r, "k": K, "shapes": {f"{a}x{b}": n for (a, b), n in shapes.items()}}
    for backend in backends:
        total, peak = 0.0, 0
        for (d_out, d_in), n in shapes.items():
            key = (d_out, d_in, min(r, d_out // K), backend)
            if key not in cache:  # models sharing a shape (LLaMA-3-8B, Mistral-7B) share the measurement
                cache[key] = measure(*key)
            total += n * cache[key]["seconds"]
            peak = max(peak, cache[key]["peak_bytes"])
        out[f"seconds_{backend}"] = total
        out[f"peak_mib_{backend}"] = peak / 2**20
    return out


def smollm2_cost(r: int = 32) -> dict | None:
    """SmolLM2-135M measured on its real weights (every targeted matrix), if its cached weights exist."""
    from ..models import cache_dir
    from ..methods import PAPER_TARGETS as TARGETS

    path = cache_dir() / "models" / "smollm2_135m" / "model.safetensors"
    if not path.exists():
        return None
    from safetensors.torch import load_file

    from .. import pmrc
    from ..pmrc import kmeans as pmrc_kmeans

    weights = [w for n, w in load_file(path).items() if n.endswith(".weight") and n.split(".")[-2] in TARGETS]
    out = {"matrices": len(weights), "r": r, "k": K, "measured": "real weights, every matrix"}
    for backend in BACKENDS:
        start = time.perf_counter()
        if backend == "reference":
            for W in weights:
                pmrc_kmeans.reference_kmeans(W, K, r, 0)
        else:  # as ID-LoRA's set-up runs it: same-shape matrices in batches
            pmrc.cluster_batch(weights, K, r, 0)
        out[f"seconds_{backend}"] = time.perf_counter() - start
        out[f"peak_mib_{backend}"] = None
    return out


def run(out_json: str | Path = "results/bench/pmrc_cost.json", out_tables: str | Path = "results/tables",
        models=tuple(MODELS), quick: bool = False) -> dict:
    from tqdm.auto import tqdm

    results, cache = {}, {}
    small = smollm2_cost() if not quick else None
    if small:
        results["smollm2_135m"] = small
    for m in tqdm(models, desc="PMRC cost", unit="model"):
        results[m] = model_cost(m, 8 if quick else MODELS[m], cache=cache) if not quick else _quick(m, cache)
    doc = {"k": K, "quick": quick, "models": results,
           "note": "LLaMA-3-8B, Mistral-7B, LLaMA-3.2-3B: one random matrix of each "
           "distinct shape clustered, time extrapolated to every matrix; SmolLM2: real weights, every matrix."}
    atomic_write_json(out_json, doc)
    write_table(doc, out_tables, source=str(out_json))
    return doc


def rebuild_table(path: str | Path = "results/bench/pmrc_cost.json", out_tables: str | Path = "results/tables"):
    """The table again from an existing results file, without measuring (``scripts/pmrc_cost.py table=true``)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"no {path}; run `make pmrc_cost` first.")
    try:
        doc = json.loads(path.read_text())
        doc["models"], doc["note"]
    except (ValueError, KeyError, TypeError):
        raise ConfigError(f"{path} is not a pmrc_cost results file; rerun `make pmrc_cost`.") from None
    return write_table(doc, out_tables, source=str(path))


def write_table(doc: dict, out_tables: str | Path = "results/tables", source: str = "results/bench/pmrc_cost.json"):
    """``table_pmrc_cost.{md,tex,json}`` from a ``pmrc_cost.json`` document (``scripts/pmrc_cost.py table=true``)."""
    from ..reports.tables.render import Table

    cols = ["matrices", "r", "seconds_reference", "seconds_torch", "speedup", "peak_mib_reference", "peak_mib_torch"]
    t = Table(name="table_pmrc_cost", title="PMRC preprocessing cost per model and backend (k=4; r=128 on the paper's models, the mini r on SmolLM2)",
              scale="tiny shapes (quick)" if doc.get("quick") else "measured on this machine",
              rows=list(doc["models"]), columns=cols, missing_note="not measured",
              fmt=lambda v: f"{v:,.1f}" if isinstance(v, float) else f"{v:,}" if isinstance(v, int) else str(v))
    for m, c in doc["models"].items():
        vals = dict(c, speedup=c["seconds_reference"] / max(c["seconds_torch"], 1e-9))
        for col in cols:
            t.add(m, col, vals.get(col), runs=[source])
    t.notes.append(doc["note"] + " Peak memory: the largest rise of resident memory while clustering one matrix "
                   "(not measured for SmolLM2, clustered in-process on its real weights). Reference: "
                   "k-means-constrained (the paper's); torch: this project's size-constrained k-means "
                   "(method.pmrc_backend).")
    return t.write(out_tables)


def _quick(model: str, cache: dict) -> dict:
    """A seconds-long stand-in for tests: the same code path on 1/64-scale shapes."""
    shapes = {(max(32, a // 64), max(16, b // 64)): n for (a, b), n in projection_shapes(model).items()}
    out = {"matrices": sum(shapes.values()), "r": 4, "k": K}
    for backend in BACKENDS:
        total, peak = 0.0, 0
        for (d_out, d_in), n in shapes.items():
            key = (d_out, d_in, 4, backend)
            if key not in cache:
                cache[key] = measure(*key)
            total, peak = total + n * cache[key]["seconds"], max(peak, cache[key]["peak_bytes"])
        out[f"seconds_{backend}"], out[f"peak_mib_{backend}"] = total, peak / 2**20
    return out
