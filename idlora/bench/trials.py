"""Paired timing trials, the one rule every benchmark times by (``efficiency``, ``gpu_check``, ``cpu``).

A trial times the two compared callables back to back, alternating which goes first: on a shared machine the load
changes between trials more than between two adjacent calls, so each trial's ratio is steadier than a ratio of
separate medians. The median over trials of the per-trial ratio is reported with a 95% bootstrap interval of that
median (``stats.median_ci``).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from tqdm.auto import tqdm

from ..stats import median_ci

PRECISION_STEP = 5  # trials between two checks of the interval's width (trial_ratios' precision)


class Timer:
    """Seconds of ``fn()``: CUDA events on a GPU (device time, no host jitter), perf_counter on the CPU."""

    def __init__(self, device: str = "cpu"):
        self.cuda = device.startswith("cuda")

    def __call__(self, fn: Callable[[], object]) -> float:
        if not self.cuda:
            t = time.perf_counter()
            fn()
            return time.perf_counter() - t
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1000


CPU_TIMER = Timer("cpu")


def paired_trial(fn: Callable[[], object], base: Callable[[], object], fn_first: bool,
                 timer: Timer = CPU_TIMER) -> float:
    """One trial: seconds of ``fn`` over seconds of ``base``, timed back to back (``fn_first``: ``fn`` goes first)."""
    if fn_first:
        t_fn, t_base = timer(fn), timer(base)
    else:
        t_base, t_fn = timer(base), timer(fn)
    return t_fn / t_base


def half_width(summary: dict) -> float:
    """The larger distance from a ``median_ci`` summary's median to an end of its interval."""
    lo, hi = summary["ci95"]
    return max(summary["median"] - lo, hi - summary["median"])


def trial_ratios(fn: Callable[[], object], base: Callable[[], object], trials: int, warmup: int = 1,
                 precision: float | None = None, max_trials: int | None = None,
                 timer: Timer = CPU_TIMER) -> list[float]:
    """Per trial, (seconds of ``fn``) / (seconds of ``base``) (``paired_trial``, alternating who goes first), after
    ``warmup`` untimed calls of each, without gradients.

    ``precision``: after ``trials`` trials, go on in steps of ``PRECISION_STEP`` until the 95% interval of the median
    (``median_ci``) is at most ``precision`` either side of it, or ``max_trials`` trials are done (a fixed-width
    sequential interval: the rule stops on the interval's width, not on where the median lies)."""
    limit = max(trials, max_trials or trials)
    ratios: list[float] = []

    def next_trials() -> int:
        if len(ratios) < trials:
            return trials - len(ratios)
        if precision is None or len(ratios) >= limit or half_width(median_ci(ratios)) <= precision:
            return 0
        return min(PRECISION_STEP, limit - len(ratios))

    with torch.no_grad(), tqdm(total=limit, desc="bench: trials", unit="trial", leave=False) as bar:
        for _ in range(warmup):
            fn(), base()
        while n := next_trials():
            for _ in range(n):
                ratios.append(paired_trial(fn, base, len(ratios) % 2 == 0, timer))  # alternate who goes first
                bar.update()
    return ratios
