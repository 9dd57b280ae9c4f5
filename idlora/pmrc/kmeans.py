"""Size-constrained k-means for PMRC (docs/DESIGN.md §1): the reference algorithm and row selection.

``reference_kmeans`` wraps Levy-Kramer's ``k-means-constrained`` (the paper's citation): Lloyd iterations whose
assignment step is a min-cost flow with every cluster holding at least ``size_min`` rows, best of ``n_init``
seeded restarts. ``select_nearest_rows`` then takes the r rows nearest each centroid.

``constrained_kmeans`` is the torch backend: the same algorithm (k-means++ seeding, Lloyd steps with an exact
constrained assignment, best of ``n_init``) on CPU or CUDA. Per Lloyd step it reads X once, in chunks of rows that
stay in cache: each chunk gives every running restart its distances (one matmul), labels and the new centres' sums
(index_add) while it is in cache. The constrained assignment, when the nearest-centre labels break the size bound,
solves its min-cost flow on the rows near a cluster boundary only and certifies the result on all rows
(``assignment_certificate``). The indices are those of the first implementation, bit for bit (tests/kmeans_v1.py).
"""

from __future__ import annotations

import numpy as np
import torch


def kmeans_objective(X: torch.Tensor, labels: torch.Tensor, centers: torch.Tensor) -> float:
    """Sum of squared Euclidean distances of each row to its assigned centroid."""
    X = X.double()
    return float(((X.detach() - centers.detach().double()[labels]) ** 2).sum())


def reference_kmeans(X: torch.Tensor, k: int, size_min: int, seed: int, n_init: int = 10):
    """(labels (n,), centers (k, d), objective) from ``k_means_constrained.KMeansConstrained``."""
    from k_means_constrained import KMeansConstrained

    Xn = X.detach().double().cpu().numpy()
    km = KMeansConstrained(n_clusters=k, size_min=size_min, random_state=seed, n_init=n_init)
    labels = km.fit_predict(Xn)
    labels_t = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    centers = torch.as_tensor(km.cluster_centers_, dtype=torch.float64)
    return labels_t, centers, kmeans_objective(X, labels_t, centers)


def select_nearest_rows(X: torch.Tensor, labels: torch.Tensor, centers: torch.Tensor, r: int,
                        chunk: int = 64) -> torch.Tensor:
    """In each cluster, the ``r`` rows nearest its centroid, nearest first (ties: lower row index): (k, r).

    Distances ||x - c_l(x)||^2 in float64, a chunk of rows at a time into one preallocated buffer (no (n, d) float64
    copy of X, whose allocation cost more than the clustering); each row's sum is the same bits as a whole-cluster
    ``((X[members] - c) ** 2).sum(1)`` (tested)."""
    X, labels = X.detach().cpu(), labels.cpu()
    centers = centers.detach().double().cpu()
    dist = torch.empty(X.shape[0], dtype=torch.float64)
    for s, b in _double_chunks(X, chunk):
        b.sub_(centers[labels[s:s + b.shape[0]]]).mul_(b)
        torch.sum(b, 1, out=dist[s:s + b.shape[0]])
    out = []
    for i in range(centers.shape[0]):
        members = torch.nonzero(labels == i).flatten()
        if members.numel() < r:
            raise ValueError(f"cluster {i} has {members.numel()} rows, fewer than r={r}")
        # stable sort on distance after sorting by index keeps ties in index order
        order = torch.argsort(dist[members], stable=True)
        out.append(members[order[:r]])
    return torch.stack(out).to(torch.long)


# ---- fast backend ----------------------------------------------------------------------------------------------
def _objectives(X: torch.Tensor, runs: list[tuple[torch.Tensor, torch.Tensor]]) -> list[float]:
    """``kmeans_objective`` of each (labels, centers) of ``runs``, in float64, in one pass over X without (n, d)
    temporaries: sum_i ||x_i - c_l(i)||^2 = sum_i ||x_i||^2 - 2 sum_i x_i.c_l(i) + sum_c n_c ||c||^2."""
    total = torch.zeros((), dtype=torch.float64, device=X.device)
    cross = [torch.zeros((), dtype=torch.float64, device=X.device) for _ in runs]
    cd = [c.double().T for _, c in runs]
    for s, b in _double_chunks(X):
        total += torch.dot(b.view(-1), b.view(-1))
        for acc, (labels, _), ct in zip(cross, runs, cd):
            acc += (b @ ct).gather(1, labels[s:s + b.shape[0], None]).sum()
    out = []
    for acc, (labels, c) in zip(cross, runs):
        c = c.double()
        n_c = torch.bincount(labels, minlength=c.shape[0]).to(c.dtype)
        out.append(float(total - 2 * acc + (n_c * (c * c).sum(1)).sum()))
    return out


def _row_sq_norms(X: torch.Tensor, chunk: int = 8192) -> torch.Tensor:
    """||x||^2 of every row of X (..., n, d) as (..., n, 1), in row chunks (once per matrix: Lloyd never changes X)."""
    return torch.cat([(x * x).sum(-1, keepdim=True) for x in X.split(chunk, dim=-2)], dim=-2)


def _sq_dists(X: torch.Tensor, centers: torch.Tensor, x2: torch.Tensor | None = None,
              chunk: int = 8192) -> torch.Tensor:
    """||x - c||^2 for every row and centre: X (..., n, d), centers (..., k, d) -> (..., n, k), via
    ||x||^2 - 2 x.c + ||c||^2 in row chunks. ``x2``: the rows' squared norms from ``_row_sq_norms``, if known.
    A batch of matrices gives bit for bit what each matrix gives alone (batched matmul; tested)."""
    x2 = _row_sq_norms(X, chunk) if x2 is None else x2
    c2 = (centers * centers).sum(-1).unsqueeze(-2)
    out = torch.empty(*X.shape[:-1], centers.shape[-2], dtype=X.dtype, device=X.device)
    for s in range(0, X.shape[-2], chunk):
        x = X[..., s:s + chunk, :]
        # (x @ c.T) * 2 is bit-identical to (2 * x) @ c.T (scaling by 2 is exact) without a pass over x
        out[..., s:s + chunk, :] = (x2[..., s:s + chunk, :] - (x @ centers.transpose(-1, -2)).mul_(2) + c2
                                    ).clamp_min_(0)
    return out


def _kmeans_pp(X: torch.Tensor, k: int, gen: torch.Generator, x2: torch.Tensor | None = None) -> torch.Tensor:
    """k-means++ seeding (D^2 sampling); the random draws come from ``gen`` on the CPU, so any device agrees."""
    n = X.shape[0]
    first = int(torch.randint(n, (1,), generator=gen))
    centers = [X[first]]
    d2 = _sq_dists(X, X[first:first + 1], x2).squeeze(1)
    for _ in range(1, k):
        p = d2.double().cpu()
        idx = int(torch.multinomial(p / p.sum(), 1, generator=gen)) if p.sum() > 0 else int(
            torch.randint(n, (1,), generator=gen))
        centers.append(X[idx])
        d2 = torch.minimum(d2, _sq_dists(X, X[idx:idx + 1], x2).squeeze(1))
    return torch.stack(centers)


def _min_cost_flow(D: torch.Tensor, lower: list[int]) -> torch.Tensor | None:
    """Exact min-cost assignment of the rows of D (n, k) to clusters, cluster c holding >= lower[c] rows, as a
    min-cost flow (OR-Tools, the solver ``k-means-constrained`` uses): each row sends one unit to a cluster; each
    cluster passes lower[c] units to the sink directly and the rest through an overflow node. None if infeasible."""
    from ortools.graph.python import min_cost_flow

    n, k = D.shape
    cost = D.double().cpu().numpy()
    scale = 1e12 / max(float(cost.max()), 1e-30)  # integer costs with ~12 significant digits
    flow = min_cost_flow.SimpleMinCostFlow()
    src = np.repeat(np.arange(n), k)
    dst = n + np.tile(np.arange(k), n)
    flow.add_arcs_with_capacity_and_unit_cost(src, dst, np.ones(n * k, dtype=np.int64),
                                              np.rint(cost * scale).astype(np.int64).ravel())
    sink, overflow = n + k, n + k + 1
    clusters = np.arange(n, n + k)
    lower = np.asarray(lower, dtype=np.int64)
    flow.add_arcs_with_capacity_and_unit_cost(clusters, np.full(k, sink), lower, np.zeros(k, np.int64))
    flow.add_arcs_with_capacity_and_unit_cost(clusters, np.full(k, overflow), np.full(k, n), np.zeros(k, np.int64))
    flow.add_arcs_with_capacity_and_unit_cost(np.array([overflow]), np.array([sink]), np.array([n - lower.sum()]),
                                              np.array([0]))
    supplies = np.zeros(n + k + 2, dtype=np.int64)
    supplies[:n], supplies[sink] = 1, -n
    flow.set_nodes_supplies(np.arange(n + k + 2), supplies)
    status = flow.solve()
    if status == flow.INFEASIBLE:
        return None
    if status != flow.OPTIMAL:
        raise RuntimeError("constrained assignment: min-cost flow found no optimal solution")
    return torch.as_tensor(flow.flows(np.arange(n * k)).reshape(n, k).argmax(1), dtype=torch.long)


def assignment_certificate(D: torch.Tensor, labels: torch.Tensor, size_min: int) -> str:
    """Whether an assignment of rows to clusters (every cluster >= ``size_min`` rows) is the minimum of
    sum_i D[i, labels[i]]: "unique", "tied" (optimal, but another assignment costs exactly as much), "not optimal"
    (or infeasible).

    Moving a row i from its cluster a to c changes the cost by D[i, c] - D[i, a]; let w[a, c] be the cheapest such
    move out of a. Any other feasible assignment differs by cycles of moves (counts unchanged) and by chains of
    moves that start at a cluster holding more than size_min rows (it can give a row away): these are the cycles of
    the min-cost flow's residual network. So the assignment is optimal iff every cycle and every such chain of the
    cluster graph w costs >= 0, and the optimum is unique iff they all cost > 0. Shortest paths by Floyd-Warshall
    on the k clusters."""
    n, k = D.shape
    counts = torch.bincount(labels, minlength=k).tolist()
    if min(counts) < size_min:
        return "not optimal"
    D = D.double().cpu()
    labels = labels.cpu()
    delta = D - D.gather(1, labels[:, None])
    inf = float("inf")
    w = torch.full((k, k), inf, dtype=torch.float64).scatter_reduce_(0, labels[:, None].expand(n, k), delta, "amin")
    w.fill_diagonal_(inf)  # staying put is not a move
    dist = w.tolist()  # dist[a][c]: the cheapest chain of >= 1 moves from a to c; dist[a][a]: the cheapest cycle
    for via in range(k):
        for a in range(k):
            if dist[a][via] == inf:
                continue
            for c in range(k):
                if dist[a][via] + dist[via][c] < dist[a][c]:
                    dist[a][c] = dist[a][via] + dist[via][c]
    chains = [dist[a][a] for a in range(k)] + [dist[s][c] for s in range(k) if counts[s] > size_min for c in range(k)]
    lowest = min(chains)
    return "not optimal" if lowest < 0 else "tied" if lowest == 0 else "unique"


def constrained_assignment(D: torch.Tensor, size_min: int) -> torch.Tensor:
    """Exact minimum-cost assignment of rows to clusters with every cluster holding >= ``size_min`` rows.

    When the nearest-centre assignment already satisfies the bound it is optimal. Otherwise only rows near a
    cluster boundary can move: for each cluster the rows cheapest to move into it (by D[i, c] - min_c' D[i, c'])
    are freed, every other row stays at its nearest centre, and the min-cost flow is solved on the freed rows
    alone. ``assignment_certificate`` then checks the result on the whole problem: a unique optimum is returned; if
    it is not optimal, more rows are freed, up to all of them (the plain min-cost flow). When the optimum is tied
    (rows at exactly equal distances), the min-cost flow on all rows decides, so that the choice among equal
    optima is the plain solver's, whatever the shortcut."""
    n, k = D.shape
    nearest = D.argmin(1)
    counts = torch.bincount(nearest, minlength=k)
    if bool((counts >= size_min).all()):
        return nearest
    delta = D.double() - D.double().gather(1, nearest[:, None])
    delta.scatter_(1, nearest[:, None], float("inf"))  # a row's own cluster is not a move
    free_per_cluster = size_min
    while free_per_cluster < n:
        free = torch.zeros(n, dtype=torch.bool)
        free[torch.topk(delta, free_per_cluster, dim=0, largest=False).indices.flatten().cpu()] = True
        fixed_counts = torch.bincount(nearest.cpu()[~free], minlength=k)
        lower = (size_min - fixed_counts).clamp_min(0).tolist()
        if sum(lower) <= int(free.sum()):
            sub = _min_cost_flow(D[free.to(D.device)], lower)
            if sub is not None:
                labels = nearest.clone()
                labels[free.to(D.device)] = sub.to(D.device)
                verdict = assignment_certificate(D, labels, size_min)
                if verdict == "unique":
                    return labels
                if verdict == "tied":
                    break
        free_per_cluster *= 4
    labels = _min_cost_flow(D, [size_min] * k)
    if labels is None:
        raise RuntimeError(f"constrained assignment: no assignment gives every cluster {size_min} rows")
    return labels.to(D.device)


def _chunk_rows(d: int) -> int:
    """Rows per chunk of a pass over X: a chunk of float32 rows of width d stays in a core's L2 cache (2 MiB, the
    fastest of 1-32 MiB measured on the 8B shapes), so every restart's work on it reads it from cache, not memory.
    Row-wise results do not depend on the chunk (tested)."""
    return max(1, CHUNK_BYTES // (4 * d))


CHUNK_BYTES = 2 * 2**20


def _double_chunks(X: torch.Tensor, rows: int | None = None):
    """(start, the next rows of X converted to float64) over X, in one reused buffer: a fresh float64 copy per chunk
    would cost more in page faults than the arithmetic on it. The buffer is overwritten by the next chunk."""
    rows = rows or max(1, F64_CHUNK_BYTES // (8 * X.shape[1]))
    buf = torch.empty(min(rows, X.shape[0]), X.shape[1], dtype=torch.float64, device=X.device)
    for s in range(0, X.shape[0], rows):
        b = buf[: min(rows, X.shape[0] - s)]
        b.copy_(X[s:s + rows])
        yield s, b


F64_CHUNK_BYTES = 2**20


def _lloyd_pass(X: torch.Tensor, centers: list[torch.Tensor], x2: torch.Tensor, step: int):
    """One pass over X for a Lloyd step of each set of centres (k, d): per chunk of rows, read once, the distances
    D_j = ||x||^2 - 2 x.c_j + ||c_j||^2 (``_sq_dists``' bits), their argmin, and the chunk's rows added into the sums
    of those nearest clusters while the chunk is in cache. Returns (D (n, k), argmin labels (n,), sums (k, d)) per
    set: the sums are the centres' update whenever the unconstrained argmin already meets the size bound."""
    n, k = X.shape[0], centers[0].shape[0]
    c2 = [(c * c).sum(-1).unsqueeze(-2) for c in centers]
    ct = [c.transpose(-1, -2) for c in centers]
    out = [(torch.empty(n, k, dtype=X.dtype, device=X.device), torch.empty(n, dtype=torch.long, device=X.device),
            torch.zeros(k, X.shape[1], dtype=X.dtype, device=X.device)) for _ in centers]
    for s in range(0, n, step):
        x, xs = X[s:s + step], x2[s:s + step]
        for (D, labels, S), t, q in zip(out, ct, c2):
            d = D[s:s + step]
            d.copy_((xs - (x @ t).mul_(2) + q).clamp_min_(0))
            lab = labels[s:s + step]
            torch.argmin(d, -1, out=lab)
            S.index_add_(0, lab, x)
    return out


def _cluster_sums_many(X: torch.Tensor, labels: list[torch.Tensor], k: int, step: int) -> list[torch.Tensor]:
    """S_c = sum of the rows labelled c (k, d), for each labelling, in one pass over X. index_add_ adds the rows in
    order whatever the chunking: the same bits as one index_add_ over all of X (tested)."""
    sums = [torch.zeros(k, X.shape[1], dtype=X.dtype, device=X.device) for _ in labels]
    for s in range(0, X.shape[0], step):
        x = X[s:s + step]
        for S, lab in zip(sums, labels):
            S.index_add_(0, lab[s:s + step], x)
    return sums


def _lloyd_restarts(X: torch.Tensor, x2: torch.Tensor, starts: list[torch.Tensor], size_min: int, max_iter: int,
                    tol: float, step: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Lloyd iterations from each start (k, d) at once: per step, one pass over X gives every running restart's
    distances, labels and (unless the size bound moves some rows: one more pass) new centres. Each restart stops on
    its own (a fixed point, or an objective gain <= tol), exactly as it would alone. Returns (labels (n,),
    centers (k, d)) per restart."""
    n, k = X.shape[0], starts[0].shape[0]
    centers = list(starts)
    labels = [torch.full((n,), -1, dtype=torch.long, device=X.device) for _ in starts]
    prev = [float("inf")] * len(starts)
    running = list(range(len(starts)))
    for _ in range(max_iter):
        if not running:
            break
        update = {}
        for j, (D, new, S) in zip(running, _lloyd_pass(X, [centers[j] for j in running], x2, step)):
            if bool((torch.bincount(new, minlength=k) < size_min).any()):
                new, S = constrained_assignment(D, size_min), None  # other labels: their sums are summed again
            if torch.equal(new, labels[j]):
                continue  # the centres are already the means of these labels: a fixed point
            obj = float(D.gather(1, new[:, None]).sum())
            update[j] = [new, S, prev[j] - obj <= tol * max(obj, 1e-30)]
            prev[j] = obj
        redo = [u for u in update.values() if u[1] is None]
        for u, S in zip(redo, _cluster_sums_many(X, [u[0] for u in redo], k, step) if redo else []):
            u[1] = S
        done = set(running) - set(update)
        for j, (new, S, converged) in update.items():
            counts = torch.bincount(new, minlength=k)
            centers[j], labels[j] = S / counts.clamp_min(1).to(X.dtype)[..., None], new
            if converged:
                done.add(j)
        running = [j for j in running if j not in done]
    return list(zip(labels, centers))


def constrained_kmeans(X: torch.Tensor, k: int, size_min: int, seed: int, n_init: int = 3, max_iter: int = 100,
                       tol: float = 1e-6):
    """Size-constrained k-means in torch (CPU or CUDA: the device of ``X``): k-means++ seeding, Lloyd iterations
    whose assignment step is exact under the lower bound (``constrained_assignment``), best of ``n_init``.
    Deterministic for a seed. Returns (labels (n,), centers (k, d), objective).

    The restarts are seeded one after another from one generator (as if run in turn), then iterate together
    (``_lloyd_restarts``): X is the memory-bound operand, and every pass over it serves all restarts still running.
    Chunks of rows small enough to stay in cache keep every product and sum the same bits as whole-matrix ones."""
    n, d = X.shape
    if k * size_min > n:
        raise ValueError(f"k*size_min = {k * size_min} > {n} rows")
    X = X.detach().float()
    step = _chunk_rows(d)
    x2 = _row_sq_norms(X, step)
    gen = torch.Generator().manual_seed(seed)
    starts = [_kmeans_pp(X, k, gen, x2) for _ in range(n_init)]
    runs = _lloyd_restarts(X, x2, starts, size_min, max_iter, tol, step)
    best = None
    for (labels, centers), objective in zip(runs, _objectives(X, runs)):
        if best is None or objective < best[2]:
            best = (labels, centers, objective)
    assert bool((torch.bincount(best[0], minlength=k) >= size_min).all())
    return best[0].cpu(), best[1], best[2]
