"""The dev metric (idlora.eval.dev.dev_loss): per task, the mean answer-token loss, as one example at a time through
HF's own loss computes it; and the training loop's dev curve at each checkpoint step."""

import json

import pytest
import torch

from idlora.config import compose
from idlora.data.templates import SFTCollator, tokenize_example
from idlora.eval.dev import dev_loss
from idlora.methods import apply_method
from idlora.models.tiny import tiny_llama, tiny_tokenizer

RECORDS = [
    {"instruction": "Add 2 and 3.", "input": "", "output": "2 + 3 = 5. The answer is 5.", "task": "gsm8k"},
    {"instruction": "What is 7 times 6?", "input": "", "output": "42", "task": "gsm8k"},
    {"instruction": "Write a function that returns 1.", "input": "", "output": "def f():\n    return 1", "task": "code"},
    {"instruction": "Reverse a list.", "input": "xs", "output": "xs[::-1]", "task": "code"},
    {"instruction": "How do I pick a lock?", "input": "", "output": "I can't help with that.", "task": "safety"},
]


def _model():
    model = apply_method(tiny_llama(seed=0), {"name": "lora", "r": 2, "alpha": 4, "dropout": 0.0})
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.normal_(0, 0.05)
    return model.eval()


def _one_at_a_time(model, tokenizer) -> dict:
    """Per task: sum over its items of (HF's mean loss of the item x its answer tokens) / its answer tokens."""
    sums, counts = {}, {}
    for r in RECORDS:
        e = tokenize_example(r, tokenizer, "chatml", 384)
        n = sum(1 for x in e["labels"][1:] if x != -100)
        with torch.no_grad():
            loss = model(**SFTCollator(tokenizer)([e]), use_cache=False).loss.item()
        sums[r["task"]] = sums.get(r["task"], 0.0) + loss * n
        counts[r["task"]] = counts.get(r["task"], 0) + n
    return {t: sums[t] / counts[t] for t in sums}


@pytest.mark.parametrize("row_tokens", [2048, 200])  # all items in one row; several rows
def test_dev_loss_is_the_answer_tokens_mean_loss_per_task(row_tokens):
    model, tokenizer = _model(), tiny_tokenizer()
    expected = _one_at_a_time(model, tokenizer)
    got = dev_loss(model, tokenizer, RECORDS, "chatml", 384, row_tokens=row_tokens)
    assert got["per_task"] == pytest.approx(expected, rel=1e-5)
    assert got["loss"] == pytest.approx(sum(expected.values()) / 3, rel=1e-5)
    assert got["items"] == 5 and not model.training


def _overrides(tmp_path):
    return ["experiment=gsm8k_llama3", "scale=tiny", "train.wandb=false", "evaluate_after_training=false",
            f"output_root={tmp_path}/runs", f"results_dir={tmp_path}/results", "train.max_steps=5",
            "train.save_steps=2", "method=lora"]


def test_the_training_loop_records_a_dev_curve_at_each_checkpoint(tmp_path, monkeypatch):
    import idlora.data

    import idlora.training.setup

    monkeypatch.setattr(idlora.data, "load_dev_for", lambda data_cfg, scale, seed: RECORDS, raising=False)
    monkeypatch.setattr(idlora.training.setup, "load_dev_for", lambda data_cfg, scale, seed: RECORDS)
    from idlora.training.loop import run

    cfg = compose([*_overrides(tmp_path), "train.dev_loss=true"])
    out = run(cfg)
    curve = json.loads(out["results_path"].read_text())["train"]["dev_curve"]
    assert [p["step"] for p in curve] == [2, 4, 5]
    assert all(set(p["per_task"]) == {"gsm8k", "code", "safety"} and p["items"] == 5 for p in curve)
    # the dev passes change nothing in training: the same run without them has the same loss curve, bit for bit
    without = run(compose([*_overrides(tmp_path / "b"), "train.dev_loss=false"]))
    assert without["loss_curve"] == out["loss_curve"] and without["dev_curve"] == []
