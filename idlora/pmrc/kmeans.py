"""Size-constrained k-means for PMRC (docs/DESIGN.md §1): the reference algorithm and row selection.

``reference_kmeans`` wraps Levy-Kramer's ``k-means-constrained`` (the paper's citation): Lloyd iterations whose
assignment step is a min-cost flow with every cluster holding at least ``size_min`` rows, best of ``n_init``
seeded restarts. ``select_nearest_rows`` then takes the r rows nearest each centroid.

``constrained_kmeans`` (one matrix) and ``constrained_kmeans_batch`` (many of one shape, each bit-identical to its
solo run) are the torch backend: the same algorithm (k-means++ seeding, Lloyd steps with an exact constrained
assignment, best of ``n_init``) on CPU or CUDA. Per Lloyd step they read X twice (one matmul for the distances,
one index_add for the centres); the constrained assignment solves its min-cost flow on the rows near a cluster
boundary only and certifies the result on all rows (``assignment_certificate``).
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


def select_nearest_rows(X: torch.Tensor, labels: torch.Tensor, centers: torch.Tensor, r: int) -> torch.Tensor:
    """In each cluster, the ``r`` rows nearest its centroid, nearest first (ties: lower row index): (k, r)."""
    X, centers, labels = X.double().cpu(), centers.double().cpu(), labels.cpu()
    out = []
    for i in range(centers.shape[0]):
        members = torch.nonzero(labels == i).flatten()
        if members.numel() < r:
            raise ValueError(f"cluster {i} has {members.numel()} rows, fewer than r={r}")
        dist = ((X[members] - centers[i]) ** 2).sum(dim=1)
        # stable sort on distance after sorting by index keeps ties in index order
        order = torch.argsort(dist, stable=True)
        out.append(members[order[:r]])
    return torch.stack(out).to(torch.long)


# ---- fast backend ----------------------------------------------------------------------------------------------
def _objective_from_sums(Xd: torch.Tensor, x2_total: float, labels: torch.Tensor, centers: torch.Tensor) -> float:
    """``kmeans_objective`` without (n, d) temporaries, in float64 (``Xd`` is X in float64):
    sum_i ||x_i - c_l(i)||^2 = sum_i ||x_i||^2 - 2 sum_c c.S_c + sum_c n_c ||c||^2, S_c the sum of cluster c's rows."""
    c = centers.double()
    S = torch.zeros_like(c).index_add_(0, labels, Xd)
    n_c = torch.bincount(labels, minlength=c.shape[0]).to(c.dtype)
    return float(x2_total - 2 * (c * S).sum() + (n_c * (c * c).sum(1)).sum())


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


def constrained_kmeans(X: torch.Tensor, k: int, size_min: int, seed: int, n_init: int = 3, max_iter: int = 100,
                       tol: float = 1e-6):
    """Size-constrained k-means in torch (CPU or CUDA: the device of ``X``): k-means++ seeding, Lloyd iterations
    whose assignment step is exact under the lower bound (``constrained_assignment``), best of ``n_init``.
    Deterministic for a seed. Returns (labels (n,), centers (k, d), objective). One matrix of
    ``constrained_kmeans_batch``."""
    labels, centers, objectives = constrained_kmeans_batch(X[None], k, size_min, seed, n_init, max_iter, tol)
    return labels[0], centers[0], objectives[0]


def constrained_kmeans_batch(X: torch.Tensor, k: int, size_min: int, seed: int, n_init: int = 3,
                             max_iter: int = 100, tol: float = 1e-6):
    """``constrained_kmeans`` of B matrices of one shape at once: X (B, n, d). Every matrix gets what it would get
    alone with the same seed (its own generator, its own stopping), but the distance, argmin and centre-update
    steps run batched over the matrices still iterating. Returns (labels (B, n), centers (B, k, d),
    objectives: list of B floats)."""
    B, n, d = X.shape
    if k * size_min > n:
        raise ValueError(f"k*size_min = {k * size_min} > {n} rows")
    X = X.detach().float()
    x2 = _row_sq_norms(X)
    x2_total = [float((Xd * Xd).sum()) for Xd in (x.double() for x in X)]
    dev = X.device
    gens = [torch.Generator().manual_seed(seed) for _ in range(B)]
    best_labels = torch.empty(B, n, dtype=torch.long, device=dev)
    best_centers = torch.empty(B, k, d, dtype=X.dtype, device=dev)
    best_obj = [float("inf")] * B
    for _ in range(n_init):
        centers = torch.stack([_kmeans_pp(X[b], k, gens[b], x2[b]) for b in range(B)])
        labels = torch.full((B, n), -1, dtype=torch.long, device=dev)
        prev = [float("inf")] * B
        running = set(range(B))
        # the matrices computed on each step: the running ones plus finished ones not dropped yet (dropping copies X)
        work, Xw, x2w, cw, lw = list(range(B)), X, x2, centers, labels
        for _ in range(max_iter):
            if not running:
                break
            if len(running) <= len(work) // 2:  # finished matrices are half the batch: drop them
                centers[work], labels[work] = cw, lw
                keep = [j for j, b in enumerate(work) if b in running]
                work = [work[j] for j in keep]
                sel = torch.tensor(keep, device=dev)
                Xw, x2w, cw, lw = (t.index_select(0, sel) for t in (Xw, x2w, cw, lw))
            D = _sq_dists(Xw, cw, x2w)  # (b, n, k)
            new = D.argmin(-1)
            counts = torch.zeros(len(work), k, dtype=torch.long, device=dev).scatter_add_(1, new, torch.ones_like(new))
            for j in torch.nonzero((counts < size_min).any(1)).flatten().tolist():
                new[j] = constrained_assignment(D[j], size_min)
                counts[j] = torch.bincount(new[j], minlength=k)
            update = []
            for j, b in enumerate(work):
                if b not in running:
                    continue
                if torch.equal(new[j], lw[j]):
                    running.discard(b)  # the centres are already the means of these labels: a fixed point
                    continue
                update.append(j)
                obj = float(D[j].gather(1, new[j][:, None]).sum())
                if prev[b] - obj <= tol * max(obj, 1e-30):
                    running.discard(b)
                prev[b] = obj
            if not update:
                continue
            offsets = torch.arange(len(work), device=dev)[:, None] * k
            sums = torch.zeros(len(work) * k, d, dtype=X.dtype, device=dev).index_add_(
                0, (new + offsets).flatten(), Xw.reshape(-1, d)).view(len(work), k, d)
            fresh = sums / counts.clamp_min(1).to(X.dtype)[..., None]
            if len(update) == len(work):
                cw, lw = fresh, new
            else:
                sel = torch.tensor(update, device=dev)
                cw, lw = cw.index_copy(0, sel, fresh[sel]), lw.index_copy(0, sel, new[sel])
        centers[work], labels[work] = cw, lw
        for b in range(B):
            objective = _objective_from_sums(X[b].double(), x2_total[b], labels[b], centers[b])
            if objective < best_obj[b]:
                best_labels[b], best_centers[b], best_obj[b] = labels[b], centers[b], objective
    assert bool((torch.stack([torch.bincount(lab, minlength=k) for lab in best_labels]) >= size_min).all())
    return best_labels.cpu(), best_centers, best_obj
