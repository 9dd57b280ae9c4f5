"""MMLU / CommonsenseQA through lm-eval on an in-memory model with two-question local task files."""

from pathlib import Path

import pytest
import torch

from idlora.errors import ConfigError
from idlora.eval.lm_eval_mc import evaluate_mc
from idlora.testing import tiny_llama, tiny_tokenizer

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
        prompt = doc["question"].strip() + "".join(f"\n{l}. {c}" for l, c in zip("ABCD", doc["choices"])) + "\nAnswer:"
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
    prompts = [d["question"].strip() + "".join(f"\n{l}. {c}" for l, c in zip("ABCD", d["choices"])) + "\nAnswer:"
               for d in docs]
    adapted = [[_choice_loglik(model, tok, p, l) for l in "ABCD"] for p in prompts]
    with model.disable_adapter():
        base = [[_choice_loglik(model, tok, p, l) for l in "ABCD"] for p in prompts]
    argmax = lambda rows: [max(range(4), key=r.__getitem__) for r in rows]  # noqa: E731
    assert argmax(adapted) != argmax(base)  # so the check below tells the two models apart
    _, per_example = evaluate_mc("mmlu", model, tok, path=str(DATA / "mmlu_two.jsonl"))
    expected = [float(max(range(4), key=s.__getitem__) == d["answer"]) for s, d in zip(adapted, docs)]
    assert [e["score"] for e in per_example] == expected
