"""The precision rule (idlora.models.precision): auto is bf16 only where the device has native bf16, training keeps
fp32 master weights and optimizer state under bf16 autocast, scoring follows the rule, and bf16's numbers stay close
to fp32's (the slow tests measure it on the mini model; the stated tolerances and what differed are in their
comments)."""

import json

import pytest
import torch

from idlora.config import compose
from idlora.errors import ConfigError
from idlora.models import precision
from idlora.training.loop import run
from idlora.training.setup import validate


def _caps(monkeypatch, **features):
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx512_f": True, **features})


def test_auto_is_bf16_on_a_cpu_with_native_bf16_only(monkeypatch):
    _caps(monkeypatch, avx512_bf16=True)
    assert precision.resolve("auto", "cpu") == "bf16"
    _caps(monkeypatch, amx_bf16=True)
    assert precision.resolve("auto", "cpu") == "bf16"
    assert precision.decision("auto", "cpu")["why"] == "CPU with native bf16 (amx_bf16)"
    _caps(monkeypatch)  # AVX-512 without its bf16 instructions: bf16 would be emulated
    assert precision.resolve("auto", "cpu") == "no"
    assert precision.decision("auto", "cpu") == {"setting": "auto", "used": "no", "device": "cpu",
                                                 "why": "CPU without native bf16"}
    _caps(monkeypatch, avx512_bf16=True)
    assert precision.resolve("no", "cpu") == "no"  # the flag that turns it off
    assert precision.resolve("bf16", "cpu") == "bf16"


def test_auto_on_cuda_follows_the_gpu(monkeypatch):
    for supported, expected in ((True, "bf16"), (False, "no")):
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda s=supported: s)
        assert precision.resolve("auto", "cuda") == expected


def test_a_bad_setting_is_refused_before_any_work(tmp_path):
    with pytest.raises(ConfigError, match=r"train.mixed_precision='fp8' is not valid; choose one of: auto, bf16"):
        precision.resolve("fp8")
    cfg = compose(["experiment=gsm8k_llama3", "scale=tiny", "train.wandb=false", f"output_root={tmp_path}/runs",
                   f"results_dir={tmp_path}/results", "train.mixed_precision=fp8"])
    with pytest.raises(ConfigError, match="mixed_precision='fp8'"):
        validate(cfg)


def test_autocast_context_and_its_dtype():
    assert precision.autocast_dtype("cpu") is None
    with precision.autocast("bf16", "cpu"):
        assert precision.autocast_dtype("cpu") == torch.bfloat16
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    with precision.autocast("no", "cpu"):
        assert precision.autocast_dtype("cpu") is None


def _tiny(tmp_path, mixed, *overrides):
    return compose(["experiment=gsm8k_llama3", "scale=tiny", "train.wandb=false", "evaluate_after_training=false",
                    f"output_root={tmp_path}/{mixed}/runs", f"results_dir={tmp_path}/{mixed}/results",
                    "train.max_steps=4", "train.save_steps=0", "method=lora", "method.dropout=0",
                    f"train.mixed_precision={mixed}", *overrides])


def test_bf16_training_keeps_fp32_weights_and_optimizer_state_and_records_it(tmp_path, monkeypatch):
    seen = []
    original = torch.optim.AdamW.step

    def watching(self, *a, **k):
        out = original(self, *a, **k)
        seen.extend((p.dtype, s["exp_avg"].dtype, s["exp_avg_sq"].dtype)
                    for g in self.param_groups for p in g["params"] for s in [self.state[p]])
        return out

    monkeypatch.setattr(torch.optim.AdamW, "step", watching)
    curves = {}
    for mixed in ("no", "bf16"):
        out = run(_tiny(tmp_path, mixed))
        record = json.loads(out["results_path"].read_text())
        assert record["train"]["precision"]["used"] == mixed
        assert all(p.dtype == torch.float32 for p in out["model"].parameters())
        curves[mixed] = out["loss_curve"]
    assert seen and set(seen) == {(torch.float32,) * 3}
    # the tiny model's own scale: bf16 rounds the products to 8 bits of mantissa, the loss to ~0.4%
    assert curves["bf16"] == pytest.approx(curves["no"], rel=0.02)
    assert curves["bf16"] != curves["no"]  # bf16 did compute something


def test_scoring_follows_the_rule_and_is_recorded(tmp_path):
    from idlora.eval.evaluate import evaluate_run

    cfg = _tiny(tmp_path, "bf16", "eval.limit=2")
    out = run(cfg)
    seen = []
    import idlora.eval.gsm8k as gsm8k

    original = gsm8k.GSM8K.evaluate

    def watching(self, *a, **k):
        seen.append(precision.autocast_dtype("cpu"))
        return original(self, *a, **k)

    gsm8k.GSM8K.evaluate, restore = watching, original
    try:
        evaluate_run(cfg, model=out["model"], tokenizer=out["tokenizer"], benchmarks=["gsm8k"])
    finally:
        gsm8k.GSM8K.evaluate = restore
    assert seen == [torch.bfloat16]
    record = json.loads(out["results_path"].read_text())
    assert record["benchmarks"]["gsm8k"]["precision"] == {"setting": "bf16", "used": "bf16", "device": "cpu",
                                                          "why": "train.mixed_precision=bf16"}


# ---- the mini model (slow): bf16 against fp32 on SmolLM2-135M --------------------------------------------------
# Measured 2026-12-07 (LoRA r=8, mini GSM8K, 8 steps, dropout 0, one thread): the bf16 curve is above the fp32 one at
# every step after the first, by 0.4% at step 1 (the forward's rounding alone) and 5-8% after (mean 5.9%, max 8.2%);
# the two adapters, both scored in fp32, differ by the same ~6% (0.348 vs 0.370): bf16 gradients make the first
# steps less effective, the forward adds ~1.5%. Tolerances: every step within 12%, the mean within 8%.
STEP_TOLERANCE, MEAN_TOLERANCE = 0.12, 0.08
# Multiple choice (mini MMLU, cloze form, 150 questions, the untrained model): 147 of 150 choices agree, accuracy
# 66.7 (fp32) vs 66.0 (bf16); options' log-likelihoods differ by a median 0.065 nats (the logits' bf16 rounding).
# Tolerance: at most 5% of the choices differ.
CHOICE_TOLERANCE = 0.05


@pytest.mark.slow
def test_mini_bf16_loss_curve_tracks_fp32(tmp_path):
    curves = {}
    for mixed in ("no", "bf16"):
        cfg = compose(["experiment=gsm8k_llama3", "method=lora", "method.dropout=0", "train.wandb=false",
                       "evaluate_after_training=false", f"output_root={tmp_path}/{mixed}/runs",
                       f"results_dir={tmp_path}/{mixed}/results", "train.max_steps=8", "train.save_steps=0",
                       f"train.mixed_precision={mixed}"])
        curves[mixed] = run(cfg)["loss_curve"]
    rel = [abs(b - a) / a for a, b in zip(curves["no"], curves["bf16"])]
    assert max(rel) <= STEP_TOLERANCE, (curves, rel)
    assert sum(rel) / len(rel) <= MEAN_TOLERANCE, (curves, rel)


@pytest.mark.slow
def test_mini_bf16_multiple_choice_agrees_with_fp32():
    from idlora.data.synthetic import mini_file
    from idlora.eval.lm_eval_mc import evaluate_mc
    from idlora.models import load_model_and_tokenizer

    model, tokenizer = load_model_and_tokenizer(compose(["experiment=multitask_llama3"]).model)
    model.eval()
    scored = {}
    for mixed in ("no", "bf16"):
        with precision.autocast(mixed, "cpu"):
            scored[mixed] = evaluate_mc("mmlu", model, tokenizer, path=str(mini_file("mmlu")), limit=150,
                                        form="cloze")[1]
    pairs = list(zip(scored["no"], scored["bf16"]))
    # bf16 really ran (lm-eval opens its own autocast, which turns an enclosing one off unless it is given the dtype)
    assert any(a["loglikelihoods"] != b["loglikelihoods"] for a, b in pairs)
    differ = sum(a["choice"] != b["choice"] for a, b in pairs)
    assert differ <= CHOICE_TOLERANCE * len(pairs), differ


def test_scoring_casts_frozen_weights_once_and_restores_their_flags():
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Linear(8, 2))
    model[0].weight.requires_grad_(False)
    model[0].bias.requires_grad_(False)
    x = torch.randn(3, 8)
    with precision.scoring("bf16", model):
        assert not torch.is_grad_enabled() and precision.autocast_dtype("cpu") == torch.bfloat16
        assert all(p.requires_grad for p in model.parameters())  # autocast caches the casts of these
        assert model(x).dtype == torch.bfloat16
    assert [p.requires_grad for p in model.parameters()] == [False, False, True, True]
    assert all(p.grad is None for p in model.parameters())
    with precision.scoring("no", model):
        assert not torch.is_grad_enabled() and model(x).dtype == torch.float32
