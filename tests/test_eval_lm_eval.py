"""MMLU / CommonsenseQA through lm-eval on an in-memory model with two-question local task files."""

from pathlib import Path

import lm_eval
import pytest
import torch

from idlora.errors import ConfigError
from idlora.eval.lm_eval_mc import evaluate_mc
from idlora.models.tiny import tiny_llama, tiny_tokenizer

DATA = Path(__file__).parent / "data"


def _choice_loglik(model, tok, prompt: str, choice: str) -> float:
    ids = tok(prompt + " " + choice, return_tensors="pt")["input_ids"]
    n_prompt = len(tok(prompt)["input_ids"])
    with torch.no_grad():
        logp = torch.log_softmax(model(ids).logits[0, :-1].double(), -1)
    targets = ids[0, 1:]
    return sum(logp[i, targets[i]].item() for i in range(n_prompt - 1, ids.shape[1] - 1))


def test_mmlu_and_cqa_local_tasks_match_an_independent_loglikelihood_argmax():
    model, tok = tiny_llama(), tiny_tokenizer()
    metrics, per_example = evaluate_mc("mmlu", model, tok, path=str(DATA / "mmlu_two.jsonl"))
    assert set(metrics) == {"mmlu"} and len(per_example) == 2
    # recompute each answer: argmax over " A".." D" continuations of the same prompt
    import json

    expected = []
    for line in (DATA / "mmlu_two.jsonl").read_text().splitlines():
        doc = json.loads(line)
        subject = doc["subject"].replace("_", " ")
        header = f"The following are multiple choice questions (with answers) about {subject}.\n\n"
        prompt = header + doc["question"].strip() + "".join(f"\n{l}. {c}" for l, c in zip("ABCD", doc["choices"]))
        prompt += "\nAnswer:"
        scores = [_choice_loglik(model, tok, prompt, l) for l in "ABCD"]
        expected.append(float(max(range(4), key=scores.__getitem__) == doc["answer"]))
    assert [e["score"] for e in per_example] == expected
    assert metrics["mmlu"] == pytest.approx(100 * sum(expected) / 2)

    metrics, per_example = evaluate_mc("cqa", model, tok, path=str(DATA / "cqa_two.jsonl"))
    assert set(metrics) == {"cqa"} and len(per_example) == 2 and 0 <= metrics["cqa"] <= 100


def test_missing_local_file_and_unknown_benchmark():
    with pytest.raises(ConfigError, match="does not exist"):
        evaluate_mc("mmlu", None, None, path="/nonexistent.jsonl")
    with pytest.raises(ConfigError, match="unknown multiple-choice benchmark"):
        evaluate_mc("arc", None, None)


def test_the_adapted_model_is_what_lm_eval_scores():
    """lm-eval must read the in-memory PEFT model, not its base: with a large random adapter the per-choice
    log-likelihoods differ from the base model's, and lm-eval's answers follow the adapted model."""
    import json

    from idlora.methods import apply_method

    tok = tiny_tokenizer()
    model = apply_method(tiny_llama(), {"name": "idlora", "r": 8, "k": 4, "selection": "serial"}).eval()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=g) * 2.0)
    docs = [json.loads(line) for line in (DATA / "mmlu_two.jsonl").read_text().splitlines()]
    prompts = [f"The following are multiple choice questions (with answers) about {d['subject'].replace('_', ' ')}.\n\n"
               + d["question"].strip() + "".join(f"\n{l}. {c}" for l, c in zip("ABCD", d["choices"])) + "\nAnswer:"
               for d in docs]
    adapted = [[_choice_loglik(model, tok, p, l) for l in "ABCD"] for p in prompts]
    with model.disable_adapter():
        base = [[_choice_loglik(model, tok, p, l) for l in "ABCD"] for p in prompts]
    argmax = lambda rows: [max(range(4), key=r.__getitem__) for r in rows]  # noqa: E731
    assert argmax(adapted) != argmax(base)  # so the check below tells the two models apart
    _, per_example = evaluate_mc("mmlu", model, tok, path=str(DATA / "mmlu_two.jsonl"))
    expected = [float(max(range(4), key=s.__getitem__) == d["answer"]) for s, d in zip(adapted, docs)]
    assert [e["score"] for e in per_example] == expected


LM_EVAL_TASKS = Path(lm_eval.__file__).parent / "tasks"


def _render(manager, task_name):
    """The zero-shot context lm-eval builds for the first test document of ``task_name``."""
    task = manager.load_task_or_group([task_name])[task_name]
    docs = task.test_docs() if task.has_test_docs() else task.validation_docs()
    return task.fewshot_context(docs[0], 0)


@pytest.mark.parametrize("benchmark,subject_yaml,doc", [
    ("mmlu", "mmlu/default/mmlu_high_school_world_history.yaml",
     {"question": "  Which empire? ", "subject": "high_school_world_history", "choices": ["a", "b", "c", "d"],
      "answer": 2}),
    ("cqa", "commonsense_qa/default.yaml",
     {"question": "Where? ", "choices": {"label": list("ABCDE"), "text": list("vwxyz")}, "answerKey": "C"}),
])
def test_local_task_prompt_is_lm_evals_own(tmp_path, benchmark, subject_yaml, doc):
    """lm-eval's own task (its installed YAML, pointed at a local copy of one document) and our local-file task
    render the same prompt for the same document: for MMLU, the per-subject header included."""
    import json

    from lm_eval.tasks import TaskManager

    from idlora.eval.lm_eval_mc import local_task

    data = tmp_path / "doc.jsonl"
    data.write_text(json.dumps(doc) + "\n")
    ours_dir, theirs_dir = tmp_path / "ours", tmp_path / "theirs"
    ours_dir.mkdir(), theirs_dir.mkdir()
    ours = _render(*reversed(local_task(benchmark, str(data), str(ours_dir))))
    split = "test" if benchmark == "mmlu" else "validation"
    (theirs_dir / "theirs.yaml").write_text(
        f"include: {LM_EVAL_TASKS / subject_yaml}\ntask: theirs\ndataset_path: json\ndataset_name: null\n"
        f"dataset_kwargs:\n  data_files:\n    {split}: {data}\n    dev: {data}\n    train: {data}\n")
    theirs = _render(TaskManager(include_path=str(theirs_dir), include_defaults=False), "theirs")
    assert ours == theirs
    if benchmark == "mmlu":
        assert ours.startswith("The following are multiple choice questions (with answers) about high school world"
                               " history.\n\nWhich empire?\nA. a")


def test_every_mmlu_subject_header_is_its_name_with_spaces():
    """Our header is a template on the document's subject: it matches all 57 of lm-eval's fixed descriptions."""
    import yaml

    files = sorted((LM_EVAL_TASKS / "mmlu" / "default").glob("mmlu_*.yaml"))
    assert len(files) == 57
    for f in files:
        cfg = yaml.safe_load(f.read_text())
        subject = cfg["dataset_name"].replace("_", " ")
        assert cfg["description"] == f"The following are multiple choice questions (with answers) about {subject}.\n\n"


def test_a_local_mmlu_file_without_subjects_is_refused(tmp_path):
    path = tmp_path / "mmlu.jsonl"
    path.write_text('{"question": "q", "choices": ["a", "b", "c", "d"], "answer": 0}\n')
    with pytest.raises(ConfigError, match="record 0 .* has no 'subject'"):
        evaluate_mc("mmlu", None, None, path=str(path))


def test_lm_eval_runs_on_the_models_device():
    """HFLM takes the device of the model it is given (here a PEFT model on the meta device), so its inputs go
    where the model is (a GPU at paper scale), not to a default device."""
    from lm_eval.models.huggingface import HFLM

    from idlora.methods import apply_method

    model = apply_method(tiny_llama(), {"name": "idlora", "r": 8, "k": 4, "selection": "serial"}).eval().to("meta")
    assert HFLM(pretrained=model, tokenizer=tiny_tokenizer(), batch_size=2).device.type == "meta"


def test_cloze_form_is_the_length_normalised_argmax_of_the_option_texts():
    """mc_form=cloze: "Question: q\nAnswer:" then " option"; the chosen option is argmax(loglik / bytes), recomputed
    here on the tiny model; per-example records keep the option chosen and every option's log-likelihood."""
    import json

    model, tok = tiny_llama(), tiny_tokenizer()
    for bench, path in (("mmlu", DATA / "mmlu_two.jsonl"), ("cqa", DATA / "cqa_two.jsonl")):
        metrics, per_example = evaluate_mc(bench, model, tok, path=str(path), form="cloze")
        docs = [json.loads(line) for line in path.read_text().splitlines()]
        for doc, rec in zip(docs, per_example):
            if bench == "mmlu":
                header = f"The following are questions (with answers) about {doc['subject'].replace('_', ' ')}.\n\n"
                options, target = doc["choices"], doc["answer"]
            else:
                header, options = "", doc["choices"]["text"]
                target = doc["choices"]["label"].index(doc["answerKey"])
            prompt = header + "Question: " + doc["question"].strip() + "\nAnswer:"
            lls = [_choice_loglik(model, tok, prompt, o) for o in options]
            assert rec["loglikelihoods"] == pytest.approx(lls, abs=1e-3)
            chosen = max(range(len(options)), key=lambda i: lls[i] / len((" " + options[i]).encode()))
            assert rec["choice"] == chosen and rec["score"] == float(chosen == target)
        assert metrics[bench] == pytest.approx(100 * sum(e["score"] for e in per_example) / len(per_example))
    with pytest.raises(ConfigError, match="mc_form"):
        evaluate_mc("mmlu", model, tok, path=str(DATA / "mmlu_two.jsonl"), form="letters")
