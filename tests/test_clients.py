"""The methods of this package through the libraries users load them with: HF Trainer and TRL's SFTTrainer (train,
save, reload), transformers' own adapter API with two ID-LoRA adapters, lm-eval's shell command on a saved adapter."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from peft import PeftModel, get_peft_model

from idlora import pmrc
from idlora.models.tiny import tiny_llama, tiny_tokenizer

from test_peft_matrix import METHODS, TOKENS, logits, saved_adapter

pytestmark = pytest.mark.slow
TEXTS = ["The quick brown fox jumps over the lazy dog.", "Low-rank adapters train few parameters."] * 4


def _trainable_snapshot(model):
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def _check_trained_and_reloads(model, before, out_dir, counted_clustering):
    changed = [n for n, p in model.named_parameters() if p.requires_grad and not torch.equal(p, before[n])]
    assert changed, "training changed no adapter weight"
    model.eval()
    expected = logits(model)
    shutil.rmtree(pmrc.cache_root(), ignore_errors=True)
    counted_clustering.clear()
    loaded = PeftModel.from_pretrained(tiny_llama(), out_dir).eval()
    assert counted_clustering == []
    torch.testing.assert_close(logits(loaded), expected, rtol=0, atol=0)


@pytest.mark.parametrize("method", METHODS)
def test_hf_trainer_trains_saves_and_reloads(method, tmp_path, counted_clustering):
    from transformers import Trainer, TrainingArguments

    tok = tiny_tokenizer()
    data = [{"input_ids": ids, "labels": ids} for ids in (tok(t)["input_ids"][:16] for t in TEXTS)]
    model = get_peft_model(tiny_llama(), METHODS[method]())
    before = _trainable_snapshot(model)
    args = TrainingArguments(output_dir=str(tmp_path / "out"), max_steps=3, per_device_train_batch_size=1,
                             learning_rate=1e-2, report_to=[], use_cpu=True, save_strategy="no", logging_steps=1)
    trainer = Trainer(model=model, args=args, train_dataset=data)
    trainer.train()
    trainer.save_model(str(tmp_path / "adapter"))
    _check_trained_and_reloads(model, before, tmp_path / "adapter", counted_clustering)


@pytest.mark.parametrize("method", METHODS)
def test_trl_sft_trainer_trains_saves_and_reloads(method, tmp_path, counted_clustering):
    trl = pytest.importorskip("trl", reason="TRL is the optional extra idlora[trl]")
    from datasets import Dataset

    tok = tiny_tokenizer()
    args = trl.SFTConfig(output_dir=str(tmp_path / "out"), max_steps=3, per_device_train_batch_size=2,
                         learning_rate=1e-2, report_to=[], use_cpu=True, save_strategy="no", max_length=32,
                         bf16=False)
    trainer = trl.SFTTrainer(model=tiny_llama(), args=args, train_dataset=Dataset.from_dict({"text": TEXTS}),
                             processing_class=tok, peft_config=METHODS[method]())
    assert isinstance(trainer.model, PeftModel)
    before = _trainable_snapshot(trainer.model)
    trainer.train()
    trainer.save_model(str(tmp_path / "adapter"))
    _check_trained_and_reloads(trainer.model, before, tmp_path / "adapter", counted_clustering)


def test_transformers_adapter_api_with_two_idlora_adapters(tmp_path, counted_clustering):
    first = saved_adapter("idlora", tmp_path / "a", seed=0)
    second = saved_adapter("idlora", tmp_path / "b", seed=1, target_modules=["q_proj", "v_proj"])
    base_logits = logits(tiny_llama())
    counted_clustering.clear()
    model = tiny_llama()
    model.load_adapter(str(tmp_path / "a"), adapter_name="a")
    model.load_adapter(str(tmp_path / "b"), adapter_name="b")
    assert counted_clustering == []
    model.set_adapter("a")
    assert model.active_adapters() == ["a"]
    torch.testing.assert_close(logits(model), first, rtol=0, atol=0)
    model.set_adapter("b")
    torch.testing.assert_close(logits(model), second, rtol=0, atol=0)
    model.disable_adapters()
    torch.testing.assert_close(logits(model), base_logits, rtol=0, atol=0)
    model.enable_adapters()
    torch.testing.assert_close(logits(model), second, rtol=0, atol=0)

    from safetensors.torch import load_file

    saved = load_file(tmp_path / "b" / "adapter_model.safetensors")
    state = model.get_adapter_state_dict("b")
    index_keys = [k for k in saved if k.endswith("idlora_index")]
    assert index_keys and all(torch.equal(state[k.removeprefix("base_model.model.")], saved[k]) for k in index_keys)
    model.add_adapter(METHODS["idlora"](seed=3, target_modules=["o_proj"]), adapter_name="c")  # untrained: B = 0
    assert len(counted_clustering) == 2  # its own two o_proj modules only
    model.set_adapter("c")
    assert model.active_adapters() == ["c"]
    torch.testing.assert_close(logits(model), base_logits, rtol=0, atol=0)
    model.delete_adapter("b")
    model.set_adapter("a")
    torch.testing.assert_close(logits(model), first, rtol=0, atol=0)
    assert set(model.peft_config) == {"a", "c"}


def _mmlu_task(tmp_path: Path) -> str:
    from idlora.eval.lm_eval_mc import TASKS

    task = "idlora_mmlu_local"
    data = Path(__file__).parent / "data" / "mmlu_two.jsonl"
    (tmp_path / f"{task}.yaml").write_text(TASKS["mmlu"][1].format(task=task, path=data.resolve()))
    return task


def test_lm_eval_shell_command_scores_a_saved_adapter(tmp_path):
    from idlora.eval.lm_eval_mc import evaluate_mc

    base = tmp_path / "base"
    tiny_llama().save_pretrained(base)
    tiny_tokenizer().save_pretrained(base)
    saved_adapter("idlora", tmp_path / "run" / "adapter", base_dir=base)
    task = _mmlu_task(tmp_path)
    cmd = [sys.executable, "-m", "idlora.lm_eval", "--model", "hf", "--model_args",
           f"pretrained={base},peft={tmp_path / 'run'},dtype=float32", "--tasks", task, "--include_path",
           str(tmp_path), "--output_path", str(tmp_path / "out"), "--device", "cpu", "--batch_size", "1"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(next((tmp_path / "out").rglob("results*.json")).read_text())
    acc = result["results"][task]["acc,none"]

    import idlora  # noqa: F401

    model = PeftModel.from_pretrained(tiny_llama(), tmp_path / "run" / "adapter").eval()
    metrics, _ = evaluate_mc("mmlu", model, tiny_tokenizer(), path=str(Path(__file__).parent / "data" /
                                                                         "mmlu_two.jsonl"))
    assert acc * 100 == pytest.approx(metrics["mmlu"])

    # plain lm-eval: the installed idlora_autoload.pth registers the methods when it imports PEFT...
    plain_args = [a.replace(f"peft={tmp_path / 'run'}", f"peft={tmp_path / 'run' / 'adapter'}") for a in cmd[3:]]
    plain_args[plain_args.index("--output_path") + 1] = str(tmp_path / "plain")
    plain = subprocess.run([sys.executable, "-m", "lm_eval", *plain_args], capture_output=True, text=True, env=env,
                           timeout=600)
    assert plain.returncode == 0, plain.stderr[-3000:]
    plain_result = json.loads(next((tmp_path / "plain").rglob("results*.json")).read_text())
    assert plain_result["results"][task]["acc,none"] == acc
    # ...and without it (IDLORA_NO_AUTOLOAD=1) it stops at PEFT with a message that says to `import idlora`
    off = subprocess.run([sys.executable, "-m", "lm_eval", *plain_args], capture_output=True, text=True,
                         env={**env, "IDLORA_NO_AUTOLOAD": "1"}, timeout=600)
    assert off.returncode != 0 and "AdapterTypeNotLoaded" in off.stderr and "`import idlora`" in off.stderr
