"""One interface for every generation benchmark (simple-evals style): load examples, build prompts, generate,
score one example's completions, aggregate to metrics in percent.

    metrics, per_example = get_benchmark("gsm8k").evaluate(model, tokenizer, eval_cfg, family="chatml", seed=0)

``per_example`` is a list of ``{"id", "score", ...}`` records (HumanEval adds ``pass@k`` per problem), the
paired data of the Wilcoxon tests. Prompts are built with the training template (``idlora.data.build_prompt``).
After ``evaluate`` the benchmark's ``info`` holds what the run's results file records beside the metrics
(``idlora.results.update_metrics(..., info=benchmark.info)``): ``generation`` (new tokens, seconds, tokens/s,
prompt and padding tokens) and whatever the benchmark adds (HEx-PHI: how many prompts and categories it read).
A benchmark whose completions have a natural end defines ``stop`` (see ``idlora.eval.generation``).
"""

from __future__ import annotations

from ..data import build_prompt
from ..errors import ConfigError
from .generation import GenerationStats, generate

# benchmark -> the real task (idlora.data.splits.TASKS) whose held-out test split it scores under source: real
REAL_TASK = {"mmlu": "mmlu", "cqa": "cqa", "gsm8k": "gsm8k", "humaneval": "code", "hexphi": "safety"}


def benchmark_source(eval_cfg, name: str) -> str:
    """Where a benchmark's test items come from: ``real`` (the packaged held-out split) where ``eval.source`` is
    real and the benchmark's task is in ``eval.real_tasks``, else ``eval.source`` (synthetic at mini, hub at paper)."""
    source = eval_cfg.get("source") or "hub"
    if name == "mbpp":  # no synthetic or hub MBPP here: always the packaged held-out items
        return "real"
    if source == "real":
        return "real" if REAL_TASK.get(name) in (eval_cfg.get("real_tasks") or ()) else "synthetic"
    return source


class Benchmark:
    """A benchmark: ``evaluate`` returns (metrics in percent, per-example records) and leaves in ``info`` what the
    results file records beside them. Generation benchmarks define the steps below; the multiple-choice ones
    (``lm_eval_mc.MultipleChoice``) score log-likelihoods through lm-eval instead, behind the same ``evaluate``."""

    name: str = ""
    system: str | None = None  # system prompt, if the protocol has one

    def __init__(self):
        self.info: dict = {}

    def load_examples(self, eval_cfg) -> list[dict]:
        raise NotImplementedError

    def instruction(self, example: dict) -> tuple[str, str]:
        """(instruction, input) of the prompt for ``example``."""
        raise NotImplementedError

    def num_samples(self, eval_cfg) -> int:
        return 1

    def temperature(self, eval_cfg) -> float:
        return 0.0

    def max_new_tokens(self, eval_cfg) -> int:
        return int(eval_cfg.get("max_new_tokens", 256))

    def stop(self, completion: str) -> int | None:
        """Where ``completion`` ends (prefix-stable), or None while it has not: generation stops there and the
        completion is cut there. By default completions run to EOS or ``max_new_tokens``."""
        return None

    def score(self, example: dict, completions: list[str]) -> dict:
        raise NotImplementedError

    def aggregate(self, per_example: list[dict]) -> dict[str, float]:
        raise NotImplementedError

    def evaluate(self, model, tokenizer, eval_cfg, family: str, seed: int = 0) -> tuple[dict, list[dict]]:
        examples = self.load_examples(eval_cfg)
        limit = eval_cfg.get("limit")
        examples = examples[: int(limit)] if limit else examples
        if not examples:
            raise ConfigError(f"{self.name}: no examples to evaluate (empty data or limit=0).")
        prompts = [build_prompt(*self.instruction(ex), family, tokenizer, system=self.system) for ex in examples]
        stop = self.stop if type(self).stop is not Benchmark.stop else None
        stats = GenerationStats()
        outputs = generate(model, tokenizer, prompts, max_new_tokens=self.max_new_tokens(eval_cfg),
                           temperature=self.temperature(eval_cfg), num_samples=self.num_samples(eval_cfg),
                           batch_size=int(eval_cfg.get("batch_size", 8)), seed=seed, desc=self.name, stop=stop,
                           stats=stats)
        self.info["generation"] = stats.as_dict()
        per_example = self.score_all(examples, outputs)
        return self.aggregate(per_example), per_example

    def score_all(self, examples: list[dict], outputs: list[list[str]]) -> list[dict]:
        """Each example's score; an example read from a packaged real set keeps its ``source`` (dataset, package,
        version, split, row id) in its record."""
        scored = [self.score(ex, out) for ex, out in zip(examples, outputs)]
        return [{**rec, "source": ex["source"]} if isinstance(ex.get("source"), dict) else rec
                for ex, rec in zip(examples, scored)]

