"""Uncertainty and significance (docs/DESIGN.md §3): the ± and † of the tables, and the medians of the benchmarks.

**Intervals.** A measured cell is the mean over its runs (seeds) of each run's metric, a run's metric being the mean
of its per-example scores (HumanEval: the per-problem pass@k). Its 95% interval is a seeded two-level percentile
bootstrap: each replicate resamples the seeds with replacement, then the example ids with replacement (one draw of
ids shared by all seeds, since every seed is scored on the same examples), and takes the mean over the drawn seeds of
the mean over the drawn ids. The interval so covers both the variation between seeds and the finite sample of
examples; with one seed it is the ordinary bootstrap over examples. A difference of two methods (claims) resamples
each method's seeds independently and one shared draw of ids for both: the pairing by example is kept.

**The † test** is an exact paired sign test: per example the difference a − b (each method's score averaged over
its seeds first), ties dropped, and the two-sided exact binomial probability of a split of wins and losses at
least as uneven as the one seen, under p = 1/2. For 0/1 outcomes this is the exact McNemar test.
"""

from __future__ import annotations

import math
import random
import statistics

import numpy as np

LEVEL = 0.95  # the intervals' coverage
BOOTSTRAP_REPLICATES = 2000
BOOTSTRAP_SEED = 0


def score_matrix(runs: list[dict[str, float]], ids: list[str] | None = None) -> tuple[np.ndarray, list[str]]:
    """(seeds x examples) scores of ``runs`` (each a dict id -> score) on the ids all of them share (sorted)."""
    if not runs:
        raise ValueError("no runs to take scores from")
    if ids is None:
        ids = sorted(set.intersection(*(set(r) for r in runs)))
    if len(ids) == 0:
        raise ValueError("the runs share no example ids")
    return np.array([[float(r[i]) for i in ids] for r in runs]), ids


def _weights(rng: np.random.Generator, size: int, replicates: int) -> np.ndarray:
    """(replicates x size) resampling weights: how often each item is drawn, over the number of draws."""
    draws = rng.integers(0, size, (replicates, size))
    counts = np.stack([np.bincount(d, minlength=size) for d in draws])
    return counts / size


def bootstrap_ci(a: list[dict[str, float]], b: list[dict[str, float]] | None = None,
                 replicates: int = BOOTSTRAP_REPLICATES, seed: int = BOOTSTRAP_SEED, level: float = LEVEL) -> dict:
    """Mean over seeds of the per-example mean of ``a`` (minus that of ``b`` if given, paired by example id), with
    its two-level bootstrap interval (module docstring). Returns ``{"mean", "low", "high", "n", "seeds"}``; ``n`` is
    the number of example ids used, ``seeds`` the runs of ``a`` (and ``b``)."""
    if not a or (b is not None and not b):
        raise ValueError("no runs to take scores from")
    sa, ids = score_matrix(a, sorted(set.intersection(*(set(r) for r in [*a, *(b or [])]))))
    rng = np.random.default_rng(seed)
    wi = _weights(rng, len(ids), replicates)
    stat = np.einsum("bs,sn,bn->b", _weights(rng, len(a), replicates), sa, wi)
    mean = float(sa.mean())
    if b is not None:
        sb, _ = score_matrix(b, ids)
        stat = stat - np.einsum("bs,sn,bn->b", _weights(rng, len(b), replicates), sb, wi)
        mean -= float(sb.mean())
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(stat, [tail, 100 - tail])
    return {"mean": mean, "low": float(low), "high": float(high), "n": len(ids),
            "seeds": len(a) if b is None else [len(a), len(b)]}


def median_difference_ci(a: list[float], b: list[float], level: float = LEVEL,
                         replicates: int = BOOTSTRAP_REPLICATES, seed: int = BOOTSTRAP_SEED) -> dict:
    """median(a) - median(b) of two independent samples (e.g. two methods' per-trial time ratios, each paired with its
    own baseline) and its percentile-bootstrap interval, each sample resampled on its own."""
    rng = np.random.default_rng(seed)
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    stat = (np.median(rng.choice(a, (replicates, a.size)), axis=1)
            - np.median(rng.choice(b, (replicates, b.size)), axis=1))
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(stat, [tail, 100 - tail])
    return {"difference": float(np.median(a) - np.median(b)), "low": float(low), "high": float(high),
            "n": [int(a.size), int(b.size)]}


def t_interval(values: list[float], level: float = LEVEL) -> dict:
    """The mean of independent replicates (e.g. one benchmark part's median ratio in each of several runs) and its
    Student-t interval: the spread *between* runs, which no interval computed within one run covers."""
    # scipy: a heavy import (about a second) that the GPU machine's wheels leave out (runs/wheels.py), only for this
    from scipy.stats import t as student_t

    x = np.asarray(values, dtype=float)
    if x.size < 2:
        raise ValueError(f"a between-run interval needs at least 2 runs, got {x.size}")
    mean, se = float(x.mean()), float(x.std(ddof=1) / math.sqrt(x.size))
    half = float(student_t.ppf(0.5 + level / 2, x.size - 1)) * se
    return {"mean": mean, "low": mean - half, "high": mean + half, "runs": int(x.size)}


def median_ci(values: list[float], resamples: int = 2000, seed: int = 0) -> dict:
    """Median and a 95% percentile-bootstrap interval of the median (the benchmarks' per-trial ratios)."""
    rng = random.Random(seed)
    meds = sorted(statistics.median(rng.choices(values, k=len(values))) for _ in range(resamples))
    return {"median": statistics.median(values), "ci95": [meds[int(0.025 * resamples)],
                                                          meds[int(0.975 * resamples) - 1]],
            "trials": len(values)}


def seed_mean(runs: list[dict[str, float]], ids: list[str]) -> np.ndarray:
    """Each example's score averaged over the runs (seeds), in the order of ``ids``."""
    return score_matrix(runs, ids)[0].mean(axis=0)


def sign_test_p(wins: int, losses: int) -> float:
    """Two-sided exact binomial p of ``wins`` against ``losses`` under p = 1/2 (doubled smaller tail, at most 1)."""
    n = wins + losses
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(wins, losses) + 1))
    return min(1.0, 2 * tail / 2 ** n)


def paired_test(a, b) -> dict:
    """Exact paired sign test of scores ``a`` against ``b`` (same examples, same order): per example a − b, ties
    dropped. Returns ``{"test", "p", "n_pairs" (non-tied), "n_ties", "wins" (a ahead), "losses"}``."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired scores must have the same length, got {a.shape} and {b.shape}")
    d = a - b
    wins, losses = int(np.sum(d > 0)), int(np.sum(d < 0))
    return {"test": "exact sign test", "p": sign_test_p(wins, losses), "n_pairs": wins + losses,
            "n_ties": int(d.size) - wins - losses, "wins": wins, "losses": losses}


def significant(a, b, alpha: float = 0.05) -> bool:
    """True if ``a`` is ahead of ``b`` (more wins than losses) and the paired sign test rejects equality at ``alpha``."""
    res = paired_test(a, b)
    return bool(res["wins"] > res["losses"] and res["p"] < alpha)
