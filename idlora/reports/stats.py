"""Significance of ID-LoRA against LoRA on paired per-example scores: the † of Tables 1 and 2 (docs/DESIGN.md §3)."""

from __future__ import annotations

import numpy as np


def wilcoxon_paired(a, b) -> dict:
    """Two-sided Wilcoxon signed-rank test of paired scores ``a`` vs ``b`` (scipy; zero differences dropped,
    as in Wilcoxon's original test). All pairs equal: no evidence of a difference, p = 1."""
    from scipy.stats import wilcoxon

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired scores must have the same length, got {a.shape} and {b.shape}")
    if not np.any(a != b):
        return {"statistic": 0.0, "pvalue": 1.0, "n": int(a.size)}
    res = wilcoxon(a, b, zero_method="wilcox", alternative="two-sided")
    return {"statistic": float(res.statistic), "pvalue": float(res.pvalue), "n": int(a.size)}


def significant(a, b, alpha: float = 0.05) -> bool:
    """True if ``a`` beats ``b`` on average and the paired test rejects equality at level ``alpha``."""
    return bool(np.mean(a) > np.mean(b) and wilcoxon_paired(a, b)["pvalue"] < alpha)
