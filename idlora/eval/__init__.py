"""The benchmarks, one module each: GSM8K (``gsm8k``), HumanEval (``humaneval``, its sandbox ``sandbox``), MBPP
(``mbpp``: the real held-out items, mini only), HEx-PHI (``hexphi``), MMLU and CommonsenseQA through lm-eval (``lm_eval_mc``); their shared interface (``base``), batched
generation (``generation``) and scoring a trained run (``evaluate``). The registry of the generation benchmarks is here,
so that ``base`` imports none of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import ConfigError

if TYPE_CHECKING:
    from .base import Benchmark


# The one list of benchmarks: those that generate (GSM8K, HumanEval, HEx-PHI, MBPP: the router statistics read their
# prompts) and the multiple-choice ones lm-eval scores by log-likelihood (MMLU, CQA). Every one is an
# ``eval.base.Benchmark`` (``get_benchmark``).
BENCHMARKS = ("gsm8k", "humaneval", "hexphi", "mbpp")
MC_BENCHMARKS = ("mmlu", "cqa")
ALL_BENCHMARKS = BENCHMARKS + MC_BENCHMARKS


def _registry() -> dict[str, type[Benchmark]]:
    """The classes, imported on first use: each module imports ``base``, and this package must load without them."""
    from .gsm8k import GSM8K
    from .hexphi import HExPHI
    from .humaneval import HumanEval
    from .lm_eval_mc import CQA, MMLU
    from .mbpp import MBPP

    reg = {"gsm8k": GSM8K, "humaneval": HumanEval, "hexphi": HExPHI, "mbpp": MBPP, "mmlu": MMLU, "cqa": CQA}
    assert tuple(reg) == ALL_BENCHMARKS
    return reg


def get_benchmark(name: str) -> Benchmark:
    if name not in ALL_BENCHMARKS:
        raise ConfigError(f"unknown benchmark {name!r}; valid: {', '.join(sorted(ALL_BENCHMARKS))}")
    return _registry()[name]()
