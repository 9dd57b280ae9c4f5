"""Seed-paired statistics for judging one method against another (docs/protocol.md).

**Design.** Seed s fixes the data order for every method, so method A's seed s and method B's seed s are a pair, and
both are scored on the same examples. An *arm* is a dict seed -> {example id: score} (0/1, or pass@k in [0, 1]). Arms
with different seeds are refused, and only the example ids that every run of both arms scored are used.

**Effect**: the mean over seeds of the per-seed difference (mean over the common ids of a - b), in points (100x).

**Bootstrap**: each replicate resamples the seed *pairs* with replacement, then the example ids with replacement (one
draw of ids shared by all seeds), and takes the mean over the drawn pairs of the mean over the drawn ids of
a_s - b_s. The interval is the replicates' percentile interval. Its two-sided p is
2 min(P*(stat <= 0), P*(stat >= 0)), the share of replicates on the far side of 0 doubled, floored at 1/replicates
(no finite bootstrap shows a smaller p) and capped at 1; it is at most 1 - level about when 0 lies outside the
percentile interval. The non-inferiority p for a margin m points (H0: effect <= -m) is P*(stat <= -m), floored alike.

**Student t** over the per-seed differences (``stats.t_interval``; a one-sample t test for the p's): the spread
between seeds only, with s - 1 degrees of freedom. It needs 2 seeds; below that it is reported as absent, not guessed.

**The verdict's p is the larger of the bootstrap's and the t test's** (``p``, ``p_noninferior``): a valid p when either
model is right. Each misses a source of error. In A/A simulations (tests/test_paired_stats.py) the bootstrap, which
counts the example noise once through the seeds and again through the ids, resolves under 1% of true nulls when the
seeds differ only by that noise, but 8-24% when the seeds themselves differ (5 to 3 pairs: a resample of so few pairs
is too narrow); the t test stays near 5% in both, but sees only the test set at hand, not the population of examples
that a difference varying by example would need. Likewise a comparison is *inferior* only when both upper bounds lie
below -margin.

**Families**: Holm at alpha = 0.05 across the primary claims' tests, Benjamini-Hochberg at q = 0.1 across the
exploratory ones (``claims/preregistered.yaml``); a test resolves when its adjusted p is at most the level.

**Validity gates** (``validity``): a comparison is judged only if both arms beat the base on their in-task dev metric
and no run diverged; otherwise its verdict is ``invalid: <reason>`` naming the runs, and it keeps its place in its
family with p = 1 (the claims file fixes the family's size, so an invalid test cannot make the others easier to
resolve). With fewer than ``MIN_SEEDS`` pairs a verdict is ``exploratory (n seeds)`` at most.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..stats import BOOTSTRAP_REPLICATES, BOOTSTRAP_SEED, LEVEL, _weights, t_interval

SUPPORTED, CONTRADICTED, NOT_RESOLVED = "supported", "contradicted", "not resolved"
NON_INFERIOR, INFERIOR = "non-inferior", "inferior"
SUPERIORITY, NON_INFERIORITY = "superiority", "non-inferiority"
HOLM_ALPHA, BH_Q = 0.05, 0.10  # the primary family's level, the exploratory family's false-discovery rate
MIN_SEEDS = 3  # pairs a side below which a verdict is exploratory at most

Arm = dict  # seed -> {example id: score}


def paired_matrix(a: Arm, b: Arm) -> tuple[list, list[str], np.ndarray]:
    """(seeds, ids, D): the seeds of both arms (sorted by their text), the example ids that every run of both arms
    scored (sorted), and D[s, i] = a[s][i] - b[s][i]. Refuses seeds in one arm only and arms sharing no example."""
    if not a or not b:
        raise ValueError("each arm needs at least one seed's scores")
    unpaired = sorted(map(str, set(a) ^ set(b)))
    if unpaired:
        raise ValueError(f"seeds {', '.join(unpaired)} are in one arm only: a paired comparison needs the same seeds "
                         "in both arms (seed s fixes the data order for every method); run them or leave them out")
    seeds = sorted(a, key=str)
    ids = sorted(set.intersection(*(set(arm[s]) for arm in (a, b) for s in seeds)))
    if not ids:
        raise ValueError("the arms' runs share no example ids: a paired comparison scores both on the same examples")
    diff = np.array([[float(a[s][i]) - float(b[s][i]) for i in ids] for s in seeds])
    return seeds, ids, diff


def seed_differences(a: Arm, b: Arm) -> dict:
    """seed -> mean over the common example ids of a - b, in score units (not points)."""
    seeds, _, diff = paired_matrix(a, b)
    return {s: float(d) for s, d in zip(seeds, diff.mean(axis=1))}


def bootstrap_replicates(diff: np.ndarray, replicates: int = BOOTSTRAP_REPLICATES,
                         seed: int = BOOTSTRAP_SEED) -> np.ndarray:
    """The two-level bootstrap's replicates of the effect, in points: seed pairs (rows of ``diff``) drawn with
    replacement, then example ids (columns) with replacement, one draw of ids shared by all seeds."""
    rng = np.random.default_rng(seed)
    ws, wi = _weights(rng, diff.shape[0], replicates), _weights(rng, diff.shape[1], replicates)
    return 100 * np.einsum("bs,sn,bn->b", ws, diff, wi)


def bootstrap_p(stat: np.ndarray) -> float:
    """Two-sided p of effect = 0 from bootstrap replicates: 2 min(P*(stat <= 0), P*(stat >= 0)), in
    [1/replicates, 1]."""
    tail = min(np.mean(stat <= 0), np.mean(stat >= 0))
    return float(min(1.0, max(2 * tail, 1 / stat.size)))


def noninferiority_p(stat: np.ndarray, margin: float) -> float:
    """One-sided p of H0: effect <= -margin (points) from bootstrap replicates: P*(stat <= -margin), floored at
    1/replicates."""
    return float(max(np.mean(stat <= -margin), 1 / stat.size))


def t_test_p(per_seed: list[float], margin: float | None = None) -> float | None:
    """One-sample Student t p over per-seed differences (points), s - 1 degrees of freedom: two-sided against 0, or
    with ``margin`` one-sided against H0: effect <= -margin. None below 2 seeds. With no spread between seeds the
    p is 0 or 1, by the side the mean lies on."""
    from scipy.stats import t as student_t

    x = np.asarray(per_seed, dtype=float)
    if x.size < 2:
        return None
    shift = 0.0 if margin is None else margin
    se = float(x.std(ddof=1) / math.sqrt(x.size))
    if se == 0:
        mean = float(x.mean()) + shift
        return (0.0 if mean != 0 else 1.0) if margin is None else (0.0 if mean > 0 else 1.0)
    z = (float(x.mean()) + shift) / se
    return float(2 * student_t.sf(abs(z), x.size - 1) if margin is None else student_t.sf(z, x.size - 1))


def paired_bootstrap(a: Arm, b: Arm, replicates: int = BOOTSTRAP_REPLICATES, seed: int = BOOTSTRAP_SEED,
                     level: float = LEVEL, margin: float | None = None) -> dict:
    """a - b paired by seed and example (module docstring), everything in points: ``effect``, the bootstrap's
    ``low``/``high``, ``n`` (example ids), ``seeds``, ``per_seed`` (seed -> difference), ``t`` (the t interval over
    the per-seed differences, or None with ``t_why``), ``p_bootstrap``, ``p_t`` and ``p`` (the larger; the verdict's).
    With ``margin`` (points) also ``p_noninferior_bootstrap``, ``p_noninferior_t`` and ``p_noninferior``."""
    seeds, ids, diff = paired_matrix(a, b)
    stat = bootstrap_replicates(diff, replicates, seed)
    per_seed = [100 * float(d) for d in diff.mean(axis=1)]
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(stat, [tail, 100 - tail])
    out = {"effect": 100 * float(diff.mean()), "low": float(low), "high": float(high), "n": len(ids),
           "seeds": seeds, "per_seed": dict(zip(seeds, per_seed)), "t": None, "level": level,
           "replicates": replicates}
    if len(seeds) < 2:
        out["t_why"] = f"a t interval over seeds needs at least 2 seed pairs, got {len(seeds)}"
    else:
        t = t_interval(per_seed, level)
        out["t"] = {"mean": t["mean"], "low": t["low"], "high": t["high"], "seeds": t["runs"]}
    out.update(_both("p", bootstrap_p(stat), t_test_p(per_seed)))
    if margin is not None:
        out["margin"] = margin
        out.update(_both("p_noninferior", noninferiority_p(stat, margin), t_test_p(per_seed, margin)))
    return out


def _both(key: str, p_bootstrap: float, p_t: float | None) -> dict:
    """The two models' p under ``key``_bootstrap and ``key``_t, and the larger (the t test's absent: the
    bootstrap's) under ``key``."""
    return {f"{key}_bootstrap": p_bootstrap, f"{key}_t": p_t,
            key: p_bootstrap if p_t is None else max(p_bootstrap, p_t)}


def holm(ps: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the order given: the i-th smallest p times (m - i + 1), made
    non-decreasing in that order, at most 1. Rejecting where the adjusted p <= alpha controls the family-wise error."""
    out, running = [0.0] * len(ps), 0.0
    for rank, i in enumerate(sorted(range(len(ps)), key=lambda j: ps[j])):
        running = max(running, min(1.0, (len(ps) - rank) * ps[i]))
        out[i] = running
    return out


def benjamini_hochberg(ps: list[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values (q-values), in the order given: the i-th smallest p times m / i, made
    non-increasing from the largest down, at most 1. Rejecting where the adjusted p <= q controls the false-discovery
    rate at q."""
    out, running = [0.0] * len(ps), 1.0
    order = sorted(range(len(ps)), key=lambda j: ps[j])
    for rank in range(len(ps), 0, -1):
        i = order[rank - 1]
        running = min(running, ps[i] * len(ps) / rank)
        out[i] = running
    return out


FAMILIES = {"primary": (holm, HOLM_ALPHA), "exploratory": (benjamini_hochberg, BH_Q)}


def superiority_verdict(result: dict, p_adjusted: float, alpha: float) -> str:
    """supported / contradicted where the adjusted p resolves (by the effect's sign), else not resolved."""
    if p_adjusted > alpha or result["effect"] == 0:
        return NOT_RESOLVED
    return SUPPORTED if result["effect"] > 0 else CONTRADICTED


def noninferiority_verdict(result: dict, p_adjusted: float, alpha: float) -> str:
    """inferior where both 95% upper bounds (bootstrap, and t where there is one) lie below -margin; non-inferior
    where the adjusted one-sided p resolves; else not resolved."""
    highs = [result["high"], *([result["t"]["high"]] if result.get("t") else [])]
    if max(highs) < -result["margin"]:
        return INFERIOR
    return NON_INFERIOR if p_adjusted <= alpha else NOT_RESOLVED


def judge_family(comparisons: list[dict], family: str) -> list[dict]:
    """Each comparison with ``p_adjusted`` and ``verdict``. A comparison is ``{"test": superiority | non-inferiority,
    "invalid": reason or None, **paired_bootstrap's result}`` (a non-inferiority one run with its margin); an invalid
    one may lack the result; a ``pending`` one (its runs not all made yet: the reason) has none and keeps its place
    with p = 1. ``family``: primary (Holm, 0.05) or exploratory (Benjamini-Hochberg, q = 0.1)."""
    adjust, alpha = FAMILIES[family]
    ps = [1.0 if c.get("invalid") or c.get("pending") else c[_P_KEY[_test(c)]] for c in comparisons]
    return [{**c, "p_adjusted": q, "verdict": _verdict(c, q, alpha)} for c, q in zip(comparisons, adjust(ps))]


_P_KEY = {SUPERIORITY: "p", NON_INFERIORITY: "p_noninferior"}


def _test(comparison: dict) -> str:
    if comparison.get("test") not in _P_KEY:
        raise ValueError(f"unknown test {comparison.get('test')!r}: {SUPERIORITY} or {NON_INFERIORITY}")
    return comparison["test"]


def _verdict(comparison: dict, p_adjusted: float, alpha: float) -> str:
    if comparison.get("pending"):
        return f"pending: {comparison['pending']}"
    if comparison.get("invalid"):
        return f"invalid: {comparison['invalid']}"
    if len(comparison["seeds"]) < MIN_SEEDS:
        return f"exploratory ({len(comparison['seeds'])} seeds)"
    judge = superiority_verdict if _test(comparison) == SUPERIORITY else noninferiority_verdict
    return judge(comparison, p_adjusted, alpha)


@dataclass(frozen=True)
class RunFacts:
    """What the validity gate needs of one run: its name, its training loss curve (in step order) and its in-task
    dev metric (the same units as the base's)."""
    run: str
    losses: list
    dev: float


def diverged(losses: list[float], dev: float | None = None, start: float | None = None) -> str | None:
    """Why a run diverged, or None: no loss curve, a non-finite training loss, or a final dev metric ``dev`` no better
    than its start ``start`` (the untrained model's; higher is better, as in ``RunFacts``).

    "Loss above its start" is read on the dev items, not on the training batches: a training step's loss is one
    batch's, and a batch of 4 mixed-task items swings with which tasks it holds (the pilot's seed-1 runs: 0.05 to
    4.25 over their last 16 steps, the last step's 2.6 above the first's 2.37, while their dev loss fell from the
    base's 3.46 to 1.66 / 1.61); the dev items are the same at every point of the curve."""
    if not losses:
        return "no loss curve"
    if not all(math.isfinite(x) for x in losses):
        return "non-finite loss"
    if dev is not None and start is not None and not dev > start:
        return f"final dev metric {dev:.4g} no better than its start {start:.4g}, the untrained model's"
    return None


def validity(arms: dict[str, list[RunFacts]], base_dev: float) -> str | None:
    """Why a comparison may not be judged, naming the runs, or None: a run that diverged, or an arm (label -> its
    runs) whose mean in-task dev metric does not beat the untrained base's ``base_dev``."""
    reasons = []
    for label, runs in arms.items():
        reasons += [f"{r.run} diverged ({why})" for r in runs if (why := diverged(list(r.losses), r.dev, base_dev))]
        dev = float(np.mean([r.dev for r in runs])) if runs else math.nan
        if not dev > base_dev:
            names = ", ".join(r.run for r in runs) or "no runs"
            reasons.append(f"{label} ({names}) does not beat the base on dev ({dev:.4g} vs {base_dev:.4g})")
    return "; ".join(reasons) or None


def aa_calibration(set_a: dict[str, Arm], set_b: dict[str, Arm], replicates: int = BOOTSTRAP_REPLICATES,
                   seed: int = BOOTSTRAP_SEED, level: float = LEVEL) -> dict:
    """Two seed sets of one config (benchmark -> arm) judged as if they were two methods, on every benchmark: the
    i-th seed of one set is paired with the i-th of the other. Returns ``judged``, ``resolved`` (p <= 1 - level:
    the verdict's p), ``rate`` = resolved / judged (near 1 - level if the verdicts are calibrated), the same for
    the bootstrap's p and the t test's alone (``rate_bootstrap``, ``rate_t``), and ``benchmarks`` (each one's
    effect, interval and p's)."""
    if set(set_a) != set(set_b) or not set_a:
        raise ValueError(f"the A/A sets must score the same benchmarks, got {sorted(set_a)} and {sorted(set_b)}")
    alpha, per = 1 - level, {}
    for bench in sorted(set_a):
        a, b = set_a[bench], set_b[bench]
        if len(a) != len(b):
            raise ValueError(f"{bench}: the A/A sets need as many seeds each, got {len(a)} and {len(b)}")
        r = paired_bootstrap(dict(enumerate(a[s] for s in sorted(a, key=str))),
                             dict(enumerate(b[s] for s in sorted(b, key=str))), replicates, seed, level)
        per[bench] = {k: r[k] for k in ("effect", "low", "high", "n", "p_bootstrap", "p_t", "p")}
    out = {"judged": len(per), "benchmarks": per}
    for key, suffix in (("p", ""), ("p_bootstrap", "_bootstrap"), ("p_t", "_t")):
        judged = [r[key] for r in per.values() if r[key] is not None]
        resolved = sum(p <= alpha for p in judged)
        out[f"resolved{suffix}"] = resolved
        out[f"rate{suffix}"] = resolved / len(judged) if judged else None
    return out
