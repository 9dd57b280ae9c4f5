"""MMLU and CommonsenseQA through ``lm-eval`` on the in-memory (PEFT) model: log-likelihood multiple choice.

At paper scale the tasks are lm-eval's own (``mmlu``: 57 subjects of ``cais/mmlu``, zero-shot;
``commonsense_qa``: ``tau/commonsense_qa`` validation split). Given a local file in the hub's schema (the mini
scale's synthetic sets, or an offline copy of the real data), the same prompt and scoring are used through a
task YAML written next to the run (``dataset_path: json``), so the protocol does not change with the source.
Accuracy and per-example correctness come back as our own metrics (percent) and scores (0/1 per question).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from ..errors import ConfigError

# The prompts of lm-eval's own mmlu (default) and commonsense_qa tasks, reused for local files. lm-eval's mmlu
# is one task per subject, each with the description "The following are multiple choice questions (with
# answers) about <subject, underscores as spaces>.\n\n" before the question; a local file mixes subjects, so
# the description is a template on the document's ``subject`` (the same text for the same document).
_MMLU_YAML = """task: {task}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {path}
test_split: test
output_type: multiple_choice
description: "The following are multiple choice questions (with answers) about {{{{subject.replace('_', ' ')}}}}.\\n\\n"
doc_to_text: "{{{{question.strip()}}}}\\nA. {{{{choices[0]}}}}\\nB. {{{{choices[1]}}}}\\nC. {{{{choices[2]}}}}\\nD. {{{{choices[3]}}}}\\nAnswer:"
doc_to_choice: ["A", "B", "C", "D"]
doc_to_target: answer
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
"""
_CQA_YAML = """task: {task}
dataset_path: json
dataset_kwargs:
  data_files:
    validation: {path}
validation_split: validation
output_type: multiple_choice
doc_to_text: "Question: {{{{ question.strip() }}}}\\nA. {{{{choices['text'][0]}}}}\\nB. {{{{choices['text'][1]}}}}\\nC. {{{{choices['text'][2]}}}}\\nD. {{{{choices['text'][3]}}}}\\nE. {{{{choices['text'][4]}}}}\\nAnswer:"
doc_to_target: answerKey
doc_to_choice: ['A', 'B', 'C', 'D', 'E']
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
"""
TASKS = {"mmlu": ("mmlu", _MMLU_YAML), "cqa": ("commonsense_qa", _CQA_YAML)}


def _check_local_file(benchmark: str, path: str) -> None:
    from ..data import read_records

    if not Path(path).exists():
        raise ConfigError(f"{benchmark}: local file {path} does not exist (eval.{benchmark}_path).")
    if benchmark == "mmlu":
        missing = [i for i, r in enumerate(read_records(path)) if not isinstance(r.get("subject"), str)]
        if missing:
            raise ConfigError(f"mmlu: record {missing[0]} of {path} has no 'subject' (cais/mmlu's schema: question, "
                              "subject, choices, answer); lm-eval's prompt names the subject, so add it.")


def local_task(benchmark: str, path: str, tmp: str):
    """(task name, lm-eval TaskManager) of the task YAML for a local file, written into the directory ``tmp``."""
    from lm_eval.tasks import TaskManager

    _check_local_file(benchmark, path)
    task = f"idlora_{benchmark}_local"
    Path(tmp, f"{task}.yaml").write_text(TASKS[benchmark][1].format(task=task, path=Path(path).resolve()))
    return task, TaskManager(include_path=tmp, include_defaults=False)  # the YAML is self-contained


def evaluate_mc(benchmark: str, model, tokenizer, path: str | None = None, limit: int | None = None,
                batch_size: int = 8) -> tuple[dict[str, float], list[dict]]:
    """Score ``benchmark`` (``mmlu`` | ``cqa``); returns ({benchmark: accuracy %}, per-example records)."""
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    if benchmark not in TASKS:
        raise ConfigError(f"unknown multiple-choice benchmark {benchmark!r}; valid: {', '.join(TASKS)}")
    hub_task = TASKS[benchmark][0]
    with tempfile.TemporaryDirectory(prefix=f"idlora_{benchmark}_") as tmp:
        if path is not None:
            task, manager = local_task(benchmark, path, tmp)
        else:
            task, manager = hub_task, TaskManager()
        padding_side = tokenizer.padding_side
        lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size)
        try:
            out = simple_evaluate(model=lm, tasks=[task], task_manager=manager, limit=limit, log_samples=True,
                                  num_fewshot=0, bootstrap_iters=0)
        except (ConnectionError, OSError, ValueError) as e:
            if path is None:
                raise ConfigError(
                    f"{benchmark}: lm-eval could not load {hub_task!r} ({type(e).__name__}: {str(e)[:160]}). "
                    f"Offline, pass a local file in the hub's schema: eval.{benchmark}_path=FILE."
                ) from None
            raise
        finally:
            tokenizer.padding_side = padding_side
    per_example = []
    for subtask, samples in sorted(out["samples"].items()):
        for s in samples:
            per_example.append({"id": f"{subtask}/{s['doc_id']}", "score": float(s["acc"])})
    if not per_example:
        raise ConfigError(f"{benchmark}: no examples were scored (empty data file or limit=0).")
    accuracy = 100.0 * sum(e["score"] for e in per_example) / len(per_example)
    return {benchmark: accuracy}, per_example
