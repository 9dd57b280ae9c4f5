"""Size-constrained k-means for PMRC (DESIGN.md §1): the reference algorithm and row selection.

``reference_kmeans`` wraps Levy-Kramer's ``k-means-constrained`` (the paper's citation): Lloyd iterations whose
assignment step is a min-cost flow with every cluster holding at least ``size_min`` rows, best of ``n_init``
seeded restarts. ``select_nearest_rows`` then takes the r rows nearest each centroid.
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
    """||x||^2 of every row, (n, 1), in row chunks (computed once per matrix: X does not change in Lloyd)."""
    return torch.cat([(x * x).sum(1, keepdim=True) for x in X.split(chunk)])


def _sq_dists(X: torch.Tensor, centers: torch.Tensor, x2: torch.Tensor | None = None,
              chunk: int = 8192) -> torch.Tensor:
    """||x - c||^2 for every row and centre, (n, k), via ||x||^2 - 2 x.c + ||c||^2 in row chunks.
    ``x2``: the rows' squared norms from ``_row_sq_norms``, if already known."""
    x2 = _row_sq_norms(X, chunk) if x2 is None else x2
    c2 = (centers * centers).sum(1)
    out = torch.empty(X.shape[0], centers.shape[0], dtype=X.dtype, device=X.device)
    for s in range(0, X.shape[0], chunk):
        x = X[s:s + chunk]
        # (x @ c.T) * 2 is bit-identical to (2 * x) @ c.T (scaling by 2 is exact) without a pass over x
        out[s:s + chunk] = (x2[s:s + chunk] - (x @ centers.T).mul_(2) + c2).clamp_min_(0)
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


def constrained_assignment(D: torch.Tensor, size_min: int) -> torch.Tensor:
    """Exact minimum-cost assignment of rows to clusters with every cluster holding >= ``size_min`` rows.

    When the nearest-centre assignment already satisfies the bound it is optimal; otherwise the problem is
    solved as a min-cost flow (OR-Tools, the solver ``k-means-constrained`` uses): each row sends one unit to a
    cluster; each cluster passes ``size_min`` units to the sink directly and the rest through an overflow node.
    """
    n, k = D.shape
    labels = D.argmin(1)
    if bool((torch.bincount(labels, minlength=k) >= size_min).all()):
        return labels
    from ortools.graph.python import min_cost_flow

    cost = D.double().cpu().numpy()
    scale = 1e12 / max(float(cost.max()), 1e-30)  # integer costs with ~12 significant digits
    flow = min_cost_flow.SimpleMinCostFlow()
    src = np.repeat(np.arange(n), k)
    dst = n + np.tile(np.arange(k), n)
    flow.add_arcs_with_capacity_and_unit_cost(src, dst, np.ones(n * k, dtype=np.int64),
                                              np.rint(cost * scale).astype(np.int64).ravel())
    sink, overflow = n + k, n + k + 1
    clusters = np.arange(n, n + k)
    flow.add_arcs_with_capacity_and_unit_cost(clusters, np.full(k, sink), np.full(k, size_min), np.zeros(k, np.int64))
    flow.add_arcs_with_capacity_and_unit_cost(clusters, np.full(k, overflow), np.full(k, n), np.zeros(k, np.int64))
    flow.add_arcs_with_capacity_and_unit_cost(np.array([overflow]), np.array([sink]), np.array([n - k * size_min]),
                                              np.array([0]))
    supplies = np.zeros(n + k + 2, dtype=np.int64)
    supplies[:n], supplies[sink] = 1, -n
    flow.set_nodes_supplies(np.arange(n + k + 2), supplies)
    if flow.solve() != flow.OPTIMAL:
        raise RuntimeError("constrained assignment: min-cost flow found no optimal solution")
    assigned = flow.flows(np.arange(n * k)).reshape(n, k).argmax(1)
    return torch.as_tensor(assigned, dtype=torch.long, device=D.device)


def constrained_kmeans(X: torch.Tensor, k: int, size_min: int, seed: int, n_init: int = 3, max_iter: int = 100,
                       tol: float = 1e-6):
    """Size-constrained k-means in torch (CPU or CUDA: the device of ``X``): k-means++ seeding, Lloyd iterations
    whose assignment step is exact under the lower bound (``constrained_assignment``), best of ``n_init``.
    Deterministic for a seed. Returns (labels (n,), centers (k, d), objective)."""
    n = X.shape[0]
    if k * size_min > n:
        raise ValueError(f"k*size_min = {k * size_min} > {n} rows")
    X = X.detach().float()
    gen = torch.Generator().manual_seed(seed)
    x2 = _row_sq_norms(X)
    Xd = X.double()
    x2_total = float((Xd * Xd).sum())
    best = None
    for _ in range(n_init):
        centers = _kmeans_pp(X, k, gen, x2)
        prev, prev_labels = float("inf"), None
        for _ in range(max_iter):
            D = _sq_dists(X, centers, x2)
            labels = constrained_assignment(D, size_min)
            if prev_labels is not None and torch.equal(labels, prev_labels):
                break  # the centres are already the means of these labels: a fixed point
            prev_labels = labels
            obj = float(D.gather(1, labels[:, None]).sum())
            sums = torch.zeros_like(centers).index_add_(0, labels, X)
            counts = torch.bincount(labels, minlength=k).clamp_min(1).to(X.dtype)
            centers = sums / counts[:, None]
            if prev - obj <= tol * max(obj, 1e-30):
                break
            prev = obj
        objective = _objective_from_sums(Xd, x2_total, labels, centers)
        if best is None or objective < best[2]:
            best = (labels, centers, objective)
    labels, centers, objective = best
    assert bool((torch.bincount(labels, minlength=k) >= size_min).all())
    return labels.cpu(), centers, objective
