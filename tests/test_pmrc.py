"""PMRC: size-constrained k-means (both backends) and the choice of rows."""

import itertools
import subprocess
import sys

import numpy as np
import pytest
import torch

from idlora import pmrc
from idlora.pmrc import select_rows
from idlora.pmrc.kmeans import _min_cost_flow, assignment_certificate, constrained_assignment, constrained_kmeans, kmeans_objective, reference_kmeans, select_nearest_rows


def clustered(n, d, k, seed=0, spread=0.3):
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(k, d, generator=g) * 3
    sizes = torch.multinomial(torch.tensor([0.55, 0.25, 0.15, 0.05][:k] + [0.1] * max(0, k - 4)), n, True,
                              generator=g)
    return centers[sizes] + spread * torch.randn(n, d, generator=g)


@pytest.mark.parametrize("case", ["tight_blob_plus_outliers", "duplicates", "exact_fill", "k1", "imbalanced"])
def test_size_constraint_always_holds(case):
    g = torch.Generator().manual_seed(1)
    if case == "tight_blob_plus_outliers":
        X, k, m = torch.cat([torch.randn(95, 8, generator=g) * 1e-3, torch.randn(5, 8, generator=g) * 100]), 4, 20
    elif case == "duplicates":
        X, k, m = torch.ones(60, 5), 3, 20
    elif case == "exact_fill":
        X, k, m = torch.randn(64, 6, generator=g), 4, 16
    elif case == "k1":
        X, k, m = torch.randn(30, 4, generator=g), 1, 30
    else:
        X, k, m = clustered(200, 16, 4), 4, 40
    for fn in (constrained_kmeans, reference_kmeans):
        labels, centers, obj = fn(X, k, m, seed=0)
        counts = torch.bincount(labels, minlength=k)
        assert (counts >= m).all(), (fn.__name__, counts)
        assert obj == pytest.approx(kmeans_objective(X, labels, centers), rel=1e-6)


def test_constrained_assignment_is_optimal_against_brute_force():
    g = torch.Generator().manual_seed(0)
    for trial in range(20):
        n, k, m = 8, 3, 2
        D = torch.rand(n, k, generator=g, dtype=torch.float64)
        got = constrained_assignment(D, m)
        best = min(
            (sum(float(D[i, a[i]]) for i in range(n)) for a in itertools.product(range(k), repeat=n)
             if all(a.count(j) >= m for j in range(k))))
        assert float(D.gather(1, got[:, None]).sum()) == pytest.approx(best, abs=1e-9)
        assert (torch.bincount(got, minlength=k) >= m).all()



def test_assignment_certificate_against_every_assignment():
    # small integer distances make exact ties common, so "tied" and "unique" optima both occur
    g = torch.Generator().manual_seed(3)
    n, k, m = 7, 3, 2
    seen = set()
    for trial in range(8):
        D = torch.randint(0, 4, (n, k), generator=g).double() + (trial % 2) * torch.rand(n, k, generator=g,
                                                                                         dtype=torch.float64)
        costs = {a: sum(float(D[i, a[i]]) for i in range(n)) for a in itertools.product(range(k), repeat=n)}
        feasible = {a: c for a, c in costs.items() if all(a.count(j) >= m for j in range(k))}
        best = min(feasible.values())
        n_best = sum(abs(c - best) < 1e-12 for c in feasible.values())
        for a in costs:
            verdict = assignment_certificate(D, torch.tensor(a), m)
            if a not in feasible or feasible[a] > best + 1e-12:
                expected = "not optimal"
            else:
                expected = "unique" if n_best == 1 else "tied"
            assert verdict == expected, (trial, a, verdict, expected)
            seen.add(verdict)
    assert seen == {"not optimal", "unique", "tied"}


@pytest.mark.parametrize("seed", range(4))
def test_constrained_assignment_shortcut_gives_the_plain_min_cost_flow(seed):
    # the shortcut (min-cost flow on the rows near a boundary, certified on all rows) returns exactly what the
    # min-cost flow on every row returns, ties included
    g = torch.Generator().manual_seed(seed)
    X = clustered(400, 16, 4, seed=seed)
    centers = X[torch.randperm(400, generator=g)[:4]]
    D = ((X[:, None, :] - centers[None]) ** 2).sum(-1)
    for m in (40, 80, 100):
        plain = _min_cost_flow(D, [m] * 4)
        assert torch.equal(constrained_assignment(D, m), plain)
    tied = D.round()  # whole numbers: many rows equally far from two centres
    assert torch.equal(constrained_assignment(tied, 90), _min_cost_flow(tied, [90] * 4))


def test_deterministic_for_a_seed_in_process_and_across_processes():
    X = clustered(300, 12, 4, seed=3)
    a = constrained_kmeans(X, 4, 30, seed=5)[0]
    b = constrained_kmeans(X, 4, 30, seed=5)[0]
    assert torch.equal(a, b)
    code = ("import torch; from idlora.pmrc.kmeans import constrained_kmeans; from tests.test_pmrc import clustered; "
            "print(constrained_kmeans(clustered(300, 12, 4, seed=3), 4, 30, seed=5)[0].tolist())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=str(__import__("pathlib").Path(__file__).parents[1]))
    assert eval(out.stdout.strip()) == a.tolist()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_torch_objective_within_one_percent_of_reference(seed):
    X = clustered(500, 64, 4, seed=seed, spread=1.0)
    _, _, ref = reference_kmeans(X, 4, 60, seed)
    _, _, fast = constrained_kmeans(X, 4, 60, seed)
    assert fast <= 1.01 * ref
    low_rank = torch.randn(400, 8, generator=torch.Generator().manual_seed(seed)) @ \
        torch.randn(8, 48, generator=torch.Generator().manual_seed(seed + 10))
    low_rank += 0.1 * torch.randn(400, 48, generator=torch.Generator().manual_seed(seed + 20))
    assert constrained_kmeans(low_rank, 4, 50, seed)[2] <= 1.01 * reference_kmeans(low_rank, 4, 50, seed)[2]


def test_select_nearest_rows_against_numpy():
    X = clustered(120, 10, 3, seed=4)
    labels, centers, _ = constrained_kmeans(X, 3, 20, seed=0)
    idx = select_nearest_rows(X, labels, centers, 7)
    Xn, Cn, Ln = X.double().numpy(), centers.double().numpy(), labels.numpy()
    for i in range(3):
        members = np.flatnonzero(Ln == i)
        dist = ((Xn[members] - Cn[i]) ** 2).sum(1)
        expected = members[np.lexsort((members, dist))][:7]
        assert idx[i].tolist() == expected.tolist()
    assert len(set(idx.flatten().tolist())) == 21


def test_selected_rows_are_nearer_their_own_centroid_than_to_any_other():
    g = torch.Generator().manual_seed(6)
    X = (torch.randn(4, 16, generator=g) * 3).repeat_interleave(50, 0) + 0.5 * torch.randn(200, 16, generator=g)
    labels, centers, _ = reference_kmeans(X, 4, 30, seed=0)
    idx = select_nearest_rows(X, labels, centers, 10)
    for i in range(4):
        d = ((X[idx[i]].double()[:, None, :] - centers[None].double()) ** 2).sum(-1)  # (10, k)
        assert torch.equal(d.argmin(1), torch.full((10,), i))


@pytest.mark.parametrize("selection", ["pmrc", "serial", "random"])
def test_select_rows_gives_k_disjoint_groups_of_r(selection):
    W = torch.randn(64, 16, generator=torch.Generator().manual_seed(0))
    idx = select_rows(W, 4, 8, selection, seed=0, backend="torch", module_name="m")
    assert idx.shape == (4, 8) and idx.dtype == torch.long
    assert len(set(idx.flatten().tolist())) == 32 and int(idx.max()) < 64
    if selection == "serial":
        assert idx.tolist() == [list(range(i * 8, (i + 1) * 8)) for i in range(4)]
    if selection == "random":
        assert torch.equal(idx, select_rows(W, 4, 8, "random", seed=0, module_name="m"))
        assert not torch.equal(idx, select_rows(W, 4, 8, "random", seed=1, module_name="m"))


def test_bf16_weights_work():
    W = torch.randn(64, 16).to(torch.bfloat16)
    assert select_rows(W, 4, 8, "pmrc", backend="torch").shape == (4, 8)


def test_batch_gives_each_matrix_what_it_gets_alone():
    # matrices that stop after different numbers of Lloyd steps and
    # that need the constrained assignment (imbalanced clusters, size_min above the smallest natural cluster)
    X = torch.stack([clustered(240, 12, 4, seed=s, spread=0.3 + 0.5 * s) for s in range(5)])
    for (labels, centers, objective), x in zip(pmrc.cluster_batch(list(X), 4, 45, seed=7), X):
        alone = constrained_kmeans(x, 4, 45, seed=7)
        assert torch.equal(labels, alone[0]) and torch.equal(centers, alone[1]) and objective == alone[2]


def test_select_rows_for_modules_batches_uncached_matrices_and_caches_them(monkeypatch):
    g = torch.Generator().manual_seed(2)
    weights = {f"layers.{i}.{p}": torch.randn(96 if p == "up" else 48, 16, generator=g)
               for i in range(3) for p in ("up", "q")}
    expected = {n: pmrc.pmrc_rows(w, 4, 8, seed=1, backend="torch") for n, w in weights.items()}
    calls = []
    batch = pmrc.pmrc_rows_batch
    monkeypatch.setattr(pmrc, "pmrc_rows_batch", lambda ws, *a, **kw: calls.append(len(ws)) or batch(ws, *a, **kw))
    got = pmrc.select_rows_for_modules(weights, 4, 8, seed=1, backend="torch", progress=False)
    assert list(got) == list(weights) and all(torch.equal(got[n], expected[n]) for n in weights)
    assert sorted(calls) == [3, 3]  # one batch per shape
    monkeypatch.setattr(pmrc, "BATCH_BYTES", 96 * 16 * 4 * 2)  # two "up" matrices per batch at most
    calls.clear()
    weights["extra.up"] = torch.randn(96, 16, generator=g)
    again = pmrc.select_rows_for_modules(weights, 4, 8, seed=1, backend="torch", progress=False)
    assert calls == [1]  # only the new matrix is clustered: the others come from the cache
    assert all(torch.equal(again[n], expected[n]) for n in expected)
    fresh = {f"new.{i}": torch.randn(96, 16, generator=g) for i in range(5)}
    calls.clear()
    pmrc.select_rows_for_modules(fresh, 4, 8, seed=1, backend="torch", progress=False)
    assert calls == [2, 2, 1]


@pytest.mark.parametrize("chunk_bytes", [None, 4 * 12 * 7])  # default chunks (one), and 7-row chunks
@pytest.mark.parametrize("case", ["clustered", "imbalanced_constrained", "random", "duplicates"])
def test_fast_kmeans_matches_the_first_implementation(case, chunk_bytes, monkeypatch):
    """Restarts iterating together over row chunks give the labels, centres and rows of the first implementation
    (tests/kmeans_v1.py: restarts in turn, whole-matrix products), bit for bit: cached selections stay valid."""
    from idlora.pmrc import kmeans as pmrc_kmeans
    from kmeans_v1 import constrained_kmeans_v1, select_nearest_rows_v1

    if chunk_bytes:
        monkeypatch.setattr(pmrc_kmeans, "CHUNK_BYTES", chunk_bytes)
    g = torch.Generator().manual_seed(3)
    X, m = {"clustered": (clustered(300, 12, 4, seed=1), 20),
            "imbalanced_constrained": (clustered(240, 12, 4, seed=2, spread=0.8), 45),
            "random": (torch.randn(200, 12, generator=g), 30),
            "duplicates": (torch.randn(10, 12, generator=g).repeat(20, 1), 25)}[case]
    for n_init in (1, 3):
        want = constrained_kmeans_v1(X, 4, m, seed=5, n_init=n_init)
        got = constrained_kmeans(X, 4, m, seed=5, n_init=n_init)
        assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
        assert got[2] == pytest.approx(want[2], rel=1e-9)  # the objective's constant term is summed in chunks
        assert torch.equal(select_nearest_rows(X, got[0], got[1], m), select_nearest_rows_v1(X, want[0], want[1], m))


@pytest.mark.slow
def test_fast_kmeans_matches_the_first_implementation_on_every_smollm2_matrix():
    """The mini model's 210 targeted matrices (real weights, the mini r): the same rows as the first implementation,
    so every recorded mini run's PMRC selection is what the current code selects."""
    from idlora.config import load_group
    from idlora.methods import PAPER_TARGETS
    from idlora.models import load_model_and_tokenizer
    from kmeans_v1 import constrained_kmeans_v1, select_nearest_rows_v1

    model = load_model_and_tokenizer(load_group("model", "smollm2_135m"))[0]
    weights = [m.weight.detach().float() for n, m in model.named_modules() if n.rsplit(".", 1)[-1] in PAPER_TARGETS]
    assert len(weights) == 210
    for W in weights:
        labels, centers, _ = constrained_kmeans_v1(W, 4, 32, 0)
        assert torch.equal(pmrc.pmrc_rows(W, 4, 32, 0, "torch"), select_nearest_rows_v1(W, labels, centers, 32))


def test_restarts_change_the_cache_key_only_when_set(tmp_path, monkeypatch):
    monkeypatch.setenv("IDLORA_CACHE", str(tmp_path))
    W = clustered(120, 8, 4, seed=4)
    assert pmrc._cache_path(W, 4, 8, 0, "torch") == pmrc._cache_path(W, 4, 8, 0, "torch", None)
    assert pmrc._cache_path(W, 4, 8, 0, "torch", 1) != pmrc._cache_path(W, 4, 8, 0, "torch")
    one = pmrc.select_rows(W, 4, 8, backend="torch", restarts=1)
    assert torch.equal(one, pmrc.pmrc_rows(W, 4, 8, 0, "torch", restarts=1))
    labels, centers, _ = constrained_kmeans(W, 4, 8, 0, n_init=1)
    assert torch.equal(one, select_nearest_rows(W, labels, centers, 8))
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="restarts must be a positive integer"):
            pmrc.select_rows_for_modules({"m": W}, 4, 8, backend="torch", progress=False, restarts=bad)
