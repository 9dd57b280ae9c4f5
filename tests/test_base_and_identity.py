"""The base row (``method=base``: the untrained model scored like a run), the scale's lr, and runs identical in
effect trained once (``experiments.effect_identity`` / ``canonical_runs``)."""

import json

import torch

from idlora.config import compose, effective_lr
from idlora.experiments import Run, canonical_runs, effect_identity, table_runs
from idlora.models import load_model_and_tokenizer
from idlora.training.pipeline import train_and_evaluate


def test_method_base_records_the_untrained_model_and_scores_it(tmp_path):
    cfg = compose(["experiment=gsm8k_llama3", "method=base", "scale=tiny", "train.wandb=false",
                   f"output_root={tmp_path}/runs", f"results_dir={tmp_path}/results", "eval.limit=2"])
    metrics = train_and_evaluate(cfg)
    record = json.loads((tmp_path / "results" / "gsm8k_llama3.tiny.base.json").read_text())
    assert record["method"] == "base" and record["trainable_params"] == 0 and record["train"]["steps"] == 0
    base, _ = load_model_and_tokenizer(cfg.model)
    assert record["total_params"] == sum(p.numel() for p in base.parameters())
    assert "gsm8k" in record["metrics"] and metrics["gsm8k"] == record["metrics"]
    assert not (tmp_path / "runs" / "gsm8k_llama3.tiny.base" / "adapter").exists()  # nothing trained, nothing saved
    # the fair protocol's gate reference: the untrained model's dev loss at step 0 (train.dev_loss is on at tiny)
    (point,) = record["train"]["dev_curve"]
    assert point["step"] == 0 and point["loss"] > 0 and set(point["per_task"]) == {"gsm8k"}


def test_the_base_model_scored_is_the_unchanged_model(tmp_path):
    from idlora.methods import apply_method

    cfg = compose(["experiment=gsm8k_llama3", "method=base", "scale=tiny"])
    model, _ = load_model_and_tokenizer(cfg.model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    out = apply_method(model, cfg.method)
    assert out is model and not any(p.requires_grad for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_mini_lr_is_the_scales_for_every_experiment_and_paper_keeps_the_experiments():
    mini = {e: compose([f"experiment={e}", "method=lora", "scale=mini"]) for e in ("gsm8k_llama3", "gsm8k_mistral")}
    assert mini["gsm8k_llama3"].train.lr != mini["gsm8k_mistral"].train.lr  # the paper's Table 4 values differ
    assert {effective_lr(c) for c in mini.values()} == {1e-3}
    assert effective_lr(compose(["experiment=gsm8k_llama3", "method=fft", "scale=mini"])) == 5e-5
    paper = compose(["experiment=gsm8k_mistral", "method=lora", "scale=paper"])
    assert effective_lr(paper) == paper.train.lr == 3e-5


def test_mistral_half_of_table1_is_served_by_the_llama_half_at_mini_only():
    runs = table_runs("table1", "mini")
    first = canonical_runs(runs)
    served = {r.row: f.row for r, f in zip(runs, first) if f is not r}
    assert served and all(row.startswith("mistral_7b/") and by == row.replace("mistral_7b", "llama3_8b")
                          for row, by in served.items())
    assert sum(f is r for r, f in zip(runs, first)) == len(runs) // 2  # every Mistral run has its LLaMA twin
    paper = table_runs("table1", "paper")
    assert all(f is r for r, f in zip(paper, canonical_runs(paper)))  # different models: nothing shared


def test_effect_identity_tells_apart_what_changes_numbers():
    a = Run("gsm8k_llama3", "lora", scale="mini").config()
    assert effect_identity(a) == effect_identity(Run("gsm8k_mistral", "lora", scale="mini").config())
    assert effect_identity(a) != effect_identity(Run("gsm8k_llama3", "lora", ["seed=1"], scale="mini").config())
    assert effect_identity(a) != effect_identity(Run("gsm8k_llama3", "lora", ["method.r=4"], scale="mini").config())
    assert effect_identity(a) != effect_identity(Run("gsm8k_llama3", "dora", scale="mini").config())


def test_table3_rows_that_are_table2_runs_are_served_by_them_at_mini_only():
    from idlora.experiments import served_runs

    borrowed = {(r.row, tuple(r.overrides)): (t, s.experiment) for r, s, t in served_runs("table3", "mini") if t != "table3"}
    assert borrowed[("lora", ())] == ("table2", "multitask_llama3")
    assert borrowed[("idlora_pmrc_rb", ("seed=1", "run_tag=_s1"))] == ("table2", "multitask_llama3")
    assert ("idlora_serial_rb", ("method.selection=serial", "run_tag=_serial")) not in borrowed  # Table 3's own
    assert all(t == "table3" for _, _, t in served_runs("table3", "paper"))  # LLaMA-3.2-3B is not LLaMA-3-8B
