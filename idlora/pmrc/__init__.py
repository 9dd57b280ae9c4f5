"""Row selection for ID-LoRA's frozen bases, computed once and cached (docs/DESIGN.md §1 "PMRC").

``select_rows(W, k, r, selection)`` returns a long tensor ``(k, r)`` holding the index sets ``S_1..S_k``:
  * ``pmrc``   — Parameter Matrix Row Clustering: the d_out rows of W are clustered into k clusters by
                 k-means constrained to a minimum cluster size r (Euclidean); in each cluster the r rows
                 nearest its centroid, nearest first.
  * ``serial`` — ablation SS: ``S_i = [i*r, (i+1)*r)``.
  * ``random`` — ablation RS: k*r distinct rows drawn with a seeded generator, split in k groups.

Clustering every projection of an 8B model takes hours with the reference algorithm, so PMRC results are
cached on disk under ``$IDLORA_CACHE/pmrc`` (default ``~/.cache/idlora/pmrc``), keyed by a hash of the weight's
bytes and every parameter that changes the result. Identical weights give identical indices on every
rank; files are written atomically, so a rank never reads another's half-written file.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from pathlib import Path

import torch

from ..files import atomic_torch_save

# Bump when the algorithm changes in a way that changes its output: old cache entries stop matching.
ALGORITHM_VERSION = 1


SELECTIONS = ("pmrc", "serial", "random", "svd", "gaussian")
ROW_SELECTIONS = ("pmrc", "serial", "random")  # A_i are rows of W; svd and gaussian give bases (k, r, d_in)


def cache_root() -> Path:
    return Path(os.environ.get("IDLORA_CACHE", Path.home() / ".cache" / "idlora")) / "pmrc"


def check_shape(d_out: int, k: int, r: int, module_name: str = "") -> None:
    if k * r > d_out:
        where = f" of module {module_name!r}" if module_name else ""
        raise ValueError(
            f"ID-LoRA needs k*r <= d_out: k={k} clusters of r={r} rows = {k * r} rows, but the weight{where} has "
            f"only d_out={d_out} rows. Lower method.r to at most {d_out // k} or method.k to at most {d_out // r}, "
            "or leave this module out of method.target_modules."
        )


def weight_digest(weight: torch.Tensor) -> str:
    """sha256 of the weight's shape, dtype and bytes: the identity of the matrix being clustered."""
    w = weight.detach().contiguous().cpu()
    h = hashlib.sha256(f"{tuple(w.shape)}|{w.dtype}".encode())
    h.update(w.view(torch.uint8).numpy().tobytes() if w.dtype.itemsize else b"")
    return h.hexdigest()


def serial_rows(k: int, r: int) -> torch.Tensor:
    return torch.arange(k * r, dtype=torch.long).reshape(k, r)


def random_rows(d_out: int, k: int, r: int, generator: torch.Generator) -> torch.Tensor:
    return torch.randperm(d_out, generator=generator)[: k * r].reshape(k, r)


def svd_bases(weight: torch.Tensor, k: int, r: int) -> torch.Tensor:
    """Reviewer ablation ``selection=svd``: W split in k contiguous row blocks W_1..W_k (d_out/k rows each, the
    last takes the remainder); A_i = sqrt(r / n_i) * diag(s_1..s_r) V_r^T from the SVD of block i, the best rank-r
    basis of its row space in place of r of its rows. The factor sqrt(r / n_i) puts ||A_i||_F^2 <= r x the block's
    mean squared row norm, i.e. on the scale of r rows of W, so the same lr and alpha apply. Returns (k, r, d_in)."""
    X = weight.detach().to(torch.promote_types(weight.dtype, torch.float32))  # SVD in fp32 at least
    d_out, d_in = X.shape
    if r > d_in:
        raise ValueError(f"ID-LoRA selection=svd: r={r} exceeds d_in={d_in}, the rank of a block.")
    bounds = [i * (d_out // k) for i in range(k)] + [d_out]
    out = []
    for i in range(k):
        block = X[bounds[i]:bounds[i + 1]]
        _, s, vh = torch.linalg.svd(block, full_matrices=False)
        out.append((s[:r, None] * vh[:r]) * (r / block.shape[0]) ** 0.5)
    return torch.stack(out).to(weight.dtype)


def gaussian_bases(weight: torch.Tensor, k: int, r: int, generator: torch.Generator) -> torch.Tensor:
    """Reviewer ablation ``selection=gaussian``: frozen random A_i (k, r, d_in), i.i.d. N(0, s^2) with s the
    standard deviation of W's entries, so a row has the norm of a typical row of W."""
    std = weight.detach().float().std()
    A = torch.randn(k, r, weight.shape[1], generator=generator) * std
    return A.to(weight.dtype)


# Seeded restarts of the k-means (the best objective is kept) when ``restarts`` is None: each backend's own default.
DEFAULT_RESTARTS = {"reference": 10, "torch": 3}  # reference: k-means-constrained's n_init


def check_restarts(restarts) -> None:
    if restarts is not None and (not isinstance(restarts, int) or isinstance(restarts, bool) or restarts < 1):
        raise ValueError(f"PMRC restarts must be a positive integer or null (the backend's default: "
                         f"{DEFAULT_RESTARTS}), got {restarts!r}.")


def cluster(X: torch.Tensor, k: int, r: int, seed: int, backend: str = "reference", restarts: int | None = None):
    """Size-constrained k-means of the rows of X (d_out, d_in), clusters of at least r rows, with ``backend``:
    (labels (d_out,), centers (k, d_in), objective)."""
    from . import kmeans as pmrc_kmeans

    if backend not in DEFAULT_RESTARTS:
        raise ValueError(f"unknown PMRC backend {backend!r}; valid: {', '.join(DEFAULT_RESTARTS)}")
    check_restarts(restarts)
    n_init = DEFAULT_RESTARTS[backend] if restarts is None else restarts
    if backend == "reference":
        return pmrc_kmeans.reference_kmeans(X.detach().cpu(), k, r, seed, n_init=n_init)
    return pmrc_kmeans.constrained_kmeans(X, k, r, seed, n_init=n_init)


def pmrc_rows(weight: torch.Tensor, k: int, r: int, seed: int, backend: str = "reference",
              restarts: int | None = None) -> torch.Tensor:
    """Cluster the rows of ``weight`` (d_out, d_in) and take the r rows nearest each centroid: (k, r)."""
    from . import kmeans as pmrc_kmeans

    X = weight.detach().float()
    labels, centers, _ = cluster(X, k, r, seed, backend, restarts)
    return pmrc_kmeans.select_nearest_rows(X, labels, centers, r).cpu()


# A batch of same-shape matrices (clustered one by one, then cached together) holds at most this many float32 bytes.
BATCH_BYTES = 256 * 2**20


def batch_size(weight: torch.Tensor) -> int:
    """How many matrices of ``weight``'s shape one batch of ``pmrc_rows_batch`` holds."""
    return max(1, BATCH_BYTES // (weight.numel() * 4))


def _batches(weights: list[torch.Tensor]):
    """Positions in ``weights`` grouped by shape and device, in batches of at most ``BATCH_BYTES``."""
    groups: dict[tuple, list[int]] = {}
    for i, w in enumerate(weights):
        groups.setdefault((tuple(w.shape), w.device), []).append(i)
    for members in groups.values():
        step = batch_size(weights[members[0]])
        for s in range(0, len(members), step):
            yield members[s:s + step]


def cluster_batch(weights: list[torch.Tensor], k: int, r: int, seed: int, restarts: int | None = None) -> list[tuple]:
    """The torch backend's size-constrained k-means of many matrices, one after another: one (labels, centers,
    objective) per matrix, in the order given. (Within a matrix, all restarts share each pass over its rows.)"""
    return [cluster(w.detach().float(), k, r, seed, "torch", restarts) for w in weights]


def pmrc_rows_batch(weights: list[torch.Tensor], k: int, r: int, seed: int,
                    restarts: int | None = None) -> list[torch.Tensor]:
    """``pmrc_rows(w, k, r, seed, "torch", restarts)`` of each of several matrices (a batch of
    ``select_rows_for_modules``, cached together)."""
    return [pmrc_rows(w, k, r, seed, "torch", restarts) for w in weights]


def _cache_path(weight: torch.Tensor, k: int, r: int, seed: int, backend: str, restarts: int | None = None) -> Path:
    # restarts=None (the backend's default) keeps the key every earlier cache entry has
    tries = "" if restarts is None else f"-n{restarts}"
    key = f"{weight_digest(weight)}-k{k}-r{r}-s{seed}-{backend}{tries}-v{ALGORITHM_VERSION}"
    return cache_root() / key[:2] / f"{key}.pt"


def _load_cached(path: Path, k: int, r: int) -> torch.Tensor | None:
    if path.exists():
        try:
            index = torch.load(path, map_location="cpu", weights_only=True)["index"]
            if tuple(index.shape) == (k, r):
                return index
        except Exception:  # a corrupt entry is recomputed and replaced, never trusted
            pass
    return None


def _store(path: Path, index: torch.Tensor, module_name: str, shape, k: int, r: int, seed: int, backend: str,
           seconds: float, restarts: int | None = None) -> None:
    atomic_torch_save(path, {"index": index, "module": module_name, "shape": list(shape), "k": k, "r": r,
                             "seed": seed, "backend": backend, "restarts": restarts, "seconds": seconds})


def select_rows(
    weight: torch.Tensor,
    k: int,
    r: int,
    selection: str = "pmrc",
    seed: int = 0,
    backend: str = "reference",
    module_name: str = "",
    use_cache: bool = True,
    restarts: int | None = None,
) -> torch.Tensor:
    """The index sets S_1..S_k of one weight matrix, as a long tensor (k, r). See the module docstring.
    For the reviewer ablations ``svd`` and ``gaussian`` the bases themselves, a float tensor (k, r, d_in)."""
    d_out = weight.shape[0]
    check_shape(d_out, k, r, module_name)
    if selection == "serial":
        return serial_rows(k, r)
    if selection == "random":
        from ..seeding import layer_generator

        return random_rows(d_out, k, r, layer_generator(seed, module_name))
    if selection == "svd":
        return svd_bases(weight, k, r)
    if selection == "gaussian":
        from ..seeding import layer_generator

        return gaussian_bases(weight, k, r, layer_generator(seed, module_name))
    if selection != "pmrc":
        raise ValueError(f"unknown row selection {selection!r}; valid: {', '.join(SELECTIONS)}")
    if not use_cache:
        return pmrc_rows(weight, k, r, seed, backend, restarts)
    path = _cache_path(weight, k, r, seed, backend, restarts)
    index = _load_cached(path, k, r)
    if index is None:
        start = time.perf_counter()
        index = pmrc_rows(weight, k, r, seed, backend, restarts)
        _store(path, index, module_name, weight.shape, k, r, seed, backend, time.perf_counter() - start, restarts)
    return index


def cluster_device() -> torch.device:
    """Where the torch backend clusters: the current GPU when there is one (weights are often still on the CPU
    when the adapter is built), else the CPU. The cache key does not name the device: a matrix is clustered once,
    wherever that happens, and every later run and rank reads the same indices."""
    return torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")


@contextlib.contextmanager
def _all_cpu_threads():
    """Under torchrun (which sets OMP_NUM_THREADS=1 in each rank) every core for clustering on the CPU: the other
    ranks only wait for this one (rank 0 clusters, they read its cache). Elsewhere the thread count is the caller's."""
    before = torch.get_num_threads()
    if int(os.environ.get("LOCAL_WORLD_SIZE", "1")) > 1:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        torch.set_num_threads(max(before, cores))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def select_rows_for_modules(
    weights: dict[str, torch.Tensor],
    k: int,
    r: int,
    selection: str = "pmrc",
    seed: int = 0,
    backend: str = "reference",
    progress: bool = True,
    restarts: int | None = None,
) -> dict[str, torch.Tensor]:
    """``select_rows`` for every named weight, with a progress bar (clustering is the slow part of set-up). With
    the torch backend, uncached matrices of one shape are clustered in batches (``pmrc_rows_batch``), each batch
    cached as soon as it is done. ``restarts``: the k-means' seeded restarts (None: the backend's default)."""
    from tqdm.auto import tqdm

    for name, w in weights.items():  # validate every module before any clustering starts
        check_shape(w.shape[0], k, r, name)
    check_restarts(restarts)
    if selection != "pmrc" or backend != "torch":
        bar = tqdm(weights.items(), desc=f"ID-LoRA rows ({selection})", unit="module",
                   disable=not progress or selection != "pmrc")
        return {name: select_rows(w, k, r, selection, seed, backend, module_name=name, restarts=restarts)
                for name, w in bar}
    out, todo = {}, []
    for name, w in weights.items():
        path = _cache_path(w, k, r, seed, backend, restarts)
        index = _load_cached(path, k, r)
        if index is None:
            todo.append((name, w, path))
        else:
            out[name] = index
    device = cluster_device()
    with tqdm(total=len(weights), initial=len(out), desc="ID-LoRA rows (pmrc)", unit="module",
              disable=not progress) as bar, _all_cpu_threads():
        for part in _batches([w for _, w, _ in todo]):  # each batch is cached as soon as it is done
            items = [todo[i] for i in part]
            start = time.perf_counter()
            indices = pmrc_rows_batch([w.to(device) for _, w, _ in items], k, r, seed, restarts)
            seconds = (time.perf_counter() - start) / len(items)  # this matrix's share of its batch
            for (name, w, path), index in zip(items, indices):
                _store(path, index, name, w.shape, k, r, seed, backend, seconds, restarts)
                out[name] = index
            bar.update(len(items))
    return {name: out[name] for name in weights}
