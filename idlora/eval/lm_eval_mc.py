"""MMLU and CommonsenseQA through ``lm-eval`` on the in-memory (PEFT) model: log-likelihood multiple choice.

At paper scale the tasks are lm-eval's own (``mmlu``: 57 subjects of ``cais/mmlu``, zero-shot;
``commonsense_qa``: ``tau/commonsense_qa`` validation split). Given a local file in the hub's schema (the mini
scale's synthetic sets, or an offline copy of the real data), the same prompt and scoring are used through a
task YAML written next to the run (``dataset_path: json``), so the protocol does not change with the source.
That is the letter form (``eval.mc_form=letter``, the paper scale's). The mini scale scores the cloze form
(``eval.mc_form=cloze``: each option's text after the question, length-normalised, ``acc_norm``), see below.
Accuracy comes back as our own metric (percent); each question's record keeps its score (0/1), the option
chosen, the target and every option's log-likelihood.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

from ..data import read_records
from ..data.splits import split_rows
from ..data.synthetic import mini_file
from ..errors import ConfigError
from ..files import atomic_write_json
from ..models.precision import autocast_dtype
from .base import REAL_TASK, Benchmark, benchmark_source

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
# Cloze form (``eval.mc_form=cloze``, the mini scale's): the question, then each option's own text scored by its
# log-likelihood normalised by its length in bytes (lm-eval's ``acc_norm``), as lm-eval's ``mmlu_continuation``
# tasks do; a 135M model cannot map an answer to its letter (it answers "A" whatever the question). CQA has no
# cloze task in lm-eval: the same prompt shape on its own schema, with the dataset's hub path or a local file.
_DATA = {"local": "dataset_path: json\ndataset_kwargs:\n  data_files:\n    {split}: {path}\n",
         "mmlu": "dataset_path: cais/mmlu\ndataset_name: all\n", "cqa": "dataset_path: tau/commonsense_qa\n"}
_MMLU_CLOZE_YAML = """task: {task}
{data}test_split: test
output_type: multiple_choice
description: "The following are questions (with answers) about {{{{subject.replace('_', ' ')}}}}.\\n\\n"
doc_to_text: "Question: {{{{question.strip()}}}}\\nAnswer:"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{answer}}}}"
metric_list:
  - metric: acc
  - metric: acc_norm
"""
_CQA_CLOZE_YAML = """task: {task}
{data}validation_split: validation
output_type: multiple_choice
doc_to_text: "Question: {{{{question.strip()}}}}\\nAnswer:"
doc_to_choice: "{{{{choices['text']}}}}"
doc_to_target: "{{{{choices['label'].index(answerKey)}}}}"
metric_list:
  - metric: acc
  - metric: acc_norm
"""
TASKS = {"mmlu": ("mmlu", _MMLU_YAML), "cqa": ("commonsense_qa", _CQA_YAML)}
CLOZE_TASKS = {"mmlu": ("mmlu_continuation", _MMLU_CLOZE_YAML, "test"),
               "cqa": (None, _CQA_CLOZE_YAML, "validation")}
MC_FORMS = ("letter", "cloze")
METRIC = {"letter": "acc", "cloze": "acc_norm"}  # the accuracy each form reports


def _check_local_file(benchmark: str, path: str) -> None:
    if not Path(path).exists():
        raise ConfigError(f"{benchmark}: local file {path} does not exist (eval.{benchmark}_path).")
    if benchmark == "mmlu":
        missing = [i for i, r in enumerate(read_records(path)) if not isinstance(r.get("subject"), str)]
        if missing:
            raise ConfigError(f"mmlu: record {missing[0]} of {path} has no 'subject' (cais/mmlu's schema: question, "
                              "subject, choices, answer); lm-eval's prompt names the subject, so add it.")


def local_task(benchmark: str, path: str | None, tmp: str, form: str = "letter"):
    """(task name, lm-eval TaskManager) of the task YAML for a local file (or, in cloze form, the hub data when
    ``path`` is None), written into the directory ``tmp``."""
    from lm_eval.tasks import TaskManager  # lm-eval is heavy (seconds to import): loaded when MC is scored

    if path is not None:
        _check_local_file(benchmark, path)
    task = f"idlora_{benchmark}_{'local' if path is not None else 'hub'}_{form}"
    if form == "letter":
        text = TASKS[benchmark][1].format(task=task, path=Path(path).resolve())
    else:
        split = CLOZE_TASKS[benchmark][2]
        data = _DATA[benchmark] if path is None else _DATA["local"].format(split=split, path=Path(path).resolve())
        text = CLOZE_TASKS[benchmark][1].format(task=task, data=data)
    Path(tmp, f"{task}.yaml").write_text(text)
    return task, TaskManager(include_path=tmp, include_defaults=False)  # the YAML is self-contained


def _task(benchmark: str, path: str | None, tmp: str, form: str):
    """(task name, TaskManager): lm-eval's own task for the hub data where it has one in this form, else ours."""
    from lm_eval.tasks import TaskManager  # lm-eval is heavy (seconds to import): loaded when MC is scored

    hub_task = TASKS[benchmark][0] if form == "letter" else CLOZE_TASKS[benchmark][0]
    if path is None and hub_task is not None:
        return hub_task, TaskManager()
    return local_task(benchmark, path, tmp, form)


def sample_record(subtask: str, s: dict, form: str) -> dict:
    """One question's per-example record: its score (0/1), the option chosen, the target, and every option's
    log-likelihood (lm-eval's ``filtered_resps``: one (log-likelihood, is-greedy) pair per option)."""
    lls = [float(r[0]) for r in s["filtered_resps"]]
    metric = METRIC[form]
    rec = {"id": f"{subtask}/{s['doc_id']}", "score": float(s[metric]), "target": s.get("target"),
           "loglikelihoods": lls}
    if form == "cloze":
        choices = [a[1] for a in (s.get("arguments") or [])]  # (context, " option") per option
        if len(choices) == len(lls):
            norm = [ll / max(1, len(c.encode("utf-8"))) for ll, c in zip(lls, choices)]
            rec["choice"] = max(range(len(norm)), key=norm.__getitem__)
            return rec
    rec["choice"] = max(range(len(lls)), key=lls.__getitem__)
    return rec


def source_records(benchmark: str, per_example: list[dict], rows: list[dict]) -> list[dict]:
    """Per-example records of a local file written from ``rows`` (in order), each with its row's ``source``, the
    question text's sha256 and the option order it was scored in, so a score can be checked against the row."""
    out = []
    for rec in per_example:
        row = rows[int(str(rec["id"]).rsplit("/", 1)[-1])]
        options = row["choices"]["text"] if benchmark == "cqa" else row["choices"]
        out.append({**rec, "source": row["source"], "options": list(options),
                    "question_sha256": hashlib.sha256(row["question"].encode("utf-8")).hexdigest()})
    return out


def evaluate_mc(benchmark: str, model, tokenizer, path: str | None = None, limit: int | None = None,
                batch_size: int = 8, form: str = "letter") -> tuple[dict[str, float], list[dict]]:
    """Score ``benchmark`` (``mmlu`` | ``cqa``) in ``form`` (``letter``: lm-eval's prompt and ``acc``; ``cloze``:
    the options' own text and ``acc_norm``); returns ({benchmark: accuracy %}, per-example records)."""
    from lm_eval import simple_evaluate  # heavy, as above
    from lm_eval.models.huggingface import HFLM

    if benchmark not in TASKS:
        raise ConfigError(f"unknown multiple-choice benchmark {benchmark!r}; valid: {', '.join(TASKS)}")
    if form not in MC_FORMS:
        raise ConfigError(f"unknown eval.mc_form {form!r}; valid: {', '.join(MC_FORMS)}")
    hub_task = TASKS[benchmark][0]
    with tempfile.TemporaryDirectory(prefix=f"idlora_{benchmark}_") as tmp:
        task, manager = _task(benchmark, path, tmp, form)
        padding_side = tokenizer.padding_side
        # lm-eval opens its own autocast (off unless given a dtype): pass it the run's, or it turns ours off
        lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size,
                  mixed_precision_dtype=autocast_dtype(next(model.parameters()).device))
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
    per_example = [sample_record(subtask, s, form) for subtask, samples in sorted(out["samples"].items())
                   for s in samples]
    if not per_example:
        raise ConfigError(f"{benchmark}: no examples were scored (empty data file or limit=0).")
    accuracy = 100.0 * sum(e["score"] for e in per_example) / len(per_example)
    return {benchmark: accuracy}, per_example


class MultipleChoice(Benchmark):
    """MMLU / CQA behind the benchmarks' interface: lm-eval on a local file, the eval config's own, the real held-out
    test split (each record then names its source row, the question's hash and the option order) or the synthetic
    set; ``info`` records the form scored (``eval.mc_form``)."""

    def evaluate(self, model, tokenizer, eval_cfg, family: str, seed: int = 0) -> tuple[dict, list[dict]]:
        name = self.name
        path, rows, source = eval_cfg.get(f"{name}_path"), None, benchmark_source(eval_cfg, name)
        form = eval_cfg.get("mc_form", "letter")
        with tempfile.TemporaryDirectory(prefix=f"idlora_{name}_test_") as tmp:
            if path is None and source == "real":
                rows = split_rows(REAL_TASK[name], "test", eval_cfg.get("limit"))
                path = str(atomic_write_json(Path(tmp) / f"{name}.json",
                                             [{k: v for k, v in r.items() if k != "source"} for r in rows]))
            elif path is None and source == "synthetic":
                path = str(mini_file(name))
            metrics, per_example = evaluate_mc(name, model, tokenizer, path=path, limit=eval_cfg.get("limit"),
                                               batch_size=eval_cfg.get("batch_size", 8), form=form)
        if rows is not None:
            per_example = source_records(name, per_example, rows)
        self.info["mc_form"] = form
        return metrics, per_example


class MMLU(MultipleChoice):
    name = "mmlu"


class CQA(MultipleChoice):
    name = "cqa"
