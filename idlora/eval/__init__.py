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


def _registry() -> dict[str, type[Benchmark]]:
    from .gsm8k import GSM8K
    from .hexphi import HExPHI
    from .humaneval import HumanEval
    from .mbpp import MBPP

    return {"gsm8k": GSM8K, "humaneval": HumanEval, "hexphi": HExPHI, "mbpp": MBPP}


BENCHMARKS = ("gsm8k", "humaneval", "hexphi", "mbpp")


def get_benchmark(name: str) -> Benchmark:
    reg = _registry()
    if name not in reg:
        raise ConfigError(f"unknown benchmark {name!r}; valid: {', '.join(sorted(reg) + ['mmlu', 'cqa'])}")
    return reg[name]()
