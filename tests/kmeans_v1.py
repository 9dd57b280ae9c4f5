"""The torch backend's size-constrained k-means as first written (ALGORITHM_VERSION 1): one restart after another,
whole-matrix products, no chunks. The reference the faster implementation must match index for index, so every
cached PMRC selection and every run recorded with it stays valid."""

from __future__ import annotations

import torch

from idlora.pmrc.kmeans import _kmeans_pp, _row_sq_norms, _sq_dists, constrained_assignment


def constrained_kmeans_v1(X: torch.Tensor, k: int, size_min: int, seed: int, n_init: int = 3, max_iter: int = 100,
                          tol: float = 1e-6):
    X = X.detach().float()
    n, d = X.shape
    x2 = _row_sq_norms(X)
    Xd = X.double()
    x2_total = float((Xd * Xd).sum())
    gen = torch.Generator().manual_seed(seed)
    best = None
    for _ in range(n_init):
        centers = _kmeans_pp(X, k, gen, x2)
        labels = torch.full((n,), -1, dtype=torch.long)
        prev = float("inf")
        for _ in range(max_iter):
            D = _sq_dists(X, centers, x2)
            new = D.argmin(-1)
            if bool((torch.bincount(new, minlength=k) < size_min).any()):
                new = constrained_assignment(D, size_min)
            if torch.equal(new, labels):
                break
            obj = float(D.gather(1, new[:, None]).sum())
            stop = prev - obj <= tol * max(obj, 1e-30)
            prev = obj
            counts = torch.bincount(new, minlength=k)
            centers = torch.zeros(k, d).index_add_(0, new, X) / counts.clamp_min(1).float()[:, None]
            labels = new
            if stop:
                break
        c = centers.double()
        S = torch.zeros_like(c).index_add_(0, labels, Xd)
        n_c = torch.bincount(labels, minlength=k).double()
        objective = float(x2_total - 2 * (c * S).sum() + (n_c * (c * c).sum(1)).sum())
        if best is None or objective < best[2]:
            best = (labels, centers, objective)
    return best


def select_nearest_rows_v1(X: torch.Tensor, labels: torch.Tensor, centers: torch.Tensor, r: int) -> torch.Tensor:
    X, centers = X.double(), centers.double()
    out = []
    for i in range(centers.shape[0]):
        members = torch.nonzero(labels == i).flatten()
        dist = ((X[members] - centers[i]) ** 2).sum(dim=1)
        out.append(members[torch.argsort(dist, stable=True)[:r]])
    return torch.stack(out)
