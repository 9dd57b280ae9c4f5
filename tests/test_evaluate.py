"""Evaluating a trained run: results land in its file, a crashing benchmark loses nothing, bad input is clear."""

import json
import shutil

import pytest
import torch

from idlora.config import compose
from idlora.errors import ConfigError
from idlora.eval.evaluate import evaluate_run, find_run, load_trained
from idlora.training.loop import run


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("run")
    cfg = compose(["experiment=multitask_llama3", "scale=tiny", "train.wandb=false", "evaluate_after_training=false",
                   f"output_root={tmp}/runs", f"results_dir={tmp}/results", "train.max_steps=2"])
    out = run(cfg)
    return cfg, out


def test_scores_land_in_the_results_file_and_a_crash_keeps_the_others(trained, monkeypatch):
    cfg, out = trained
    import idlora.eval.gsm8k as gsm8k

    def boom(self, eval_cfg):
        raise RuntimeError("dataset exploded")

    monkeypatch.setattr(gsm8k.GSM8K, "load_examples", boom)
    summary = evaluate_run(cfg, benchmarks=["gsm8k", "mmlu", "hexphi"])  # loads the saved adapter
    assert "error" in summary["gsm8k"] and "mmlu" in summary["mmlu"] and "hexphi_refusal" in summary["hexphi"]
    record = json.loads(out["results_path"].read_text())
    assert "dataset exploded" in record["benchmarks"]["gsm8k"]["error"]
    assert set(record["metrics"]) == {"mmlu", "hexphi_refusal"}
    assert record["train"]["steps"] == 2
    gen = record["benchmarks"]["hexphi"]["generation"]  # generation speed beside the metrics, not a metric
    assert gen["tokens"] > 0 and gen["tokens_per_s"] == pytest.approx(gen["tokens"] / gen["seconds"], rel=0.05)


def test_unknown_benchmark_and_missing_adapter(trained, tmp_path):
    cfg, out = trained
    with pytest.raises(ConfigError, match="unknown benchmark.*'arc'.*valid: cqa, gsm8k"):
        evaluate_run(cfg, model=out["model"], tokenizer=out["tokenizer"], benchmarks=["arc"])
    _, record = find_run(str(out["results_path"]))
    adapter = tmp_path / "adapter"
    shutil.copytree(out["adapter_dir"], adapter)
    record["train"]["adapter_dir"] = str(adapter)
    (adapter / "adapter_config.json").unlink()
    with pytest.raises(ConfigError, match="no adapter in .*resume it"):
        load_trained(record)
    with pytest.raises(ConfigError, match="no results file for run 'nope'"):
        find_run("nope", results_dir=str(tmp_path))


@pytest.mark.parametrize("method", ["lora", "dora", "lori", "idlora", "hydralora"])
def test_inference_model_merges_fixed_updates_and_keeps_the_function(method):
    from idlora.eval.evaluate import inference_model
    from idlora.methods import apply_method
    from idlora.models.tiny import tiny_llama

    tokens = torch.randint(3, 250, (2, 10), generator=torch.Generator().manual_seed(0))
    cfg = {"name": method, "r": 8 if method == "idlora" else 4}
    if method == "idlora":
        cfg["selection"] = "serial"
    model = apply_method(tiny_llama(), cfg).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=g) * 0.05)
    expected = model(tokens).logits
    out = inference_model(model)
    merged = method in ("lora", "dora", "lori")
    assert (type(out).__name__ == "LlamaForCausalLM") == merged
    torch.testing.assert_close(out(tokens).logits, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("key,value", [("mc_form", "letters"), ("humaneval_set", "openia"), ("judge", "gpt9")])
def test_unknown_eval_choices_are_one_clear_error(key, value):
    from omegaconf import OmegaConf

    from idlora.eval.evaluate import check_eval_config

    ok = OmegaConf.create({"benchmarks": ["mmlu", "humaneval"], "mc_form": "cloze", "humaneval_set": "synthetic",
                           "judge": "keyword", "source": "synthetic"})
    assert check_eval_config(ok) == ["mmlu", "humaneval"]
    with pytest.raises(ConfigError, match=f"{value}.*valid: .*eval.{key}="):
        check_eval_config(OmegaConf.merge(ok, {key: value}))


def test_scales_set_the_eval_keys_paper_keeps_the_protocol():
    mini = compose(["experiment=multitask_llama3", "method=lora", "scale=mini"]).eval
    assert (mini.mc_form, mini.humaneval_set, mini.limit, mini.hexphi_max_new_tokens) == ("cloze", "synthetic", 150, 48)
    assert mini.humaneval_problems >= 30 and mini.humaneval_samples == 5  # pass@1, pass@5 (time budget)
    paper = compose(["experiment=multitask_llama3", "method=lora", "scale=paper"]).eval
    assert (paper.mc_form, paper.humaneval_set, paper.limit) == ("letter", "openai", None)
    assert paper.hexphi_max_new_tokens is None and paper.humaneval_max_new_tokens is None
