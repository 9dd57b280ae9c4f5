"""PEFT's generic checks (its ``testing_common.py`` kind) for each of the four methods of this package, beside the
matrix of ``test_peft_matrix.py``: ``generate`` with the KV cache gives what it gives without, gradient checkpointing
gives the gradients of the plain backward, ``inject_adapter_in_model`` builds the layers ``get_peft_model`` builds,
``modules_to_save`` trains a copy that save/load restores, and bf16 autocast stays close to fp32. Expected values come
from the same model run another way (no cache, no checkpointing, fp32), never from the code under test alone."""

import pytest
import torch
from peft import PeftModel, get_peft_model, inject_adapter_in_model

from idlora.models.tiny import tiny_llama
from test_peft_matrix import METHODS, TOKENS, logits, perturb


def _model(method, **cfg):
    return perturb(get_peft_model(tiny_llama(), METHODS[method](**cfg)))


@pytest.mark.parametrize("method", METHODS)
def test_generate_with_kv_cache_matches_generate_without(method, counted_clustering):
    model = _model(method)
    prompt = TOKENS[:1, :5]
    kw = dict(max_new_tokens=6, do_sample=False, pad_token_id=0)
    with torch.no_grad():
        cached = model.generate(input_ids=prompt, use_cache=True, **kw)
        plain = model.generate(input_ids=prompt, use_cache=False, **kw)
    assert cached.shape == (1, 11) and torch.equal(cached, plain)


def _grads(model, checkpointing: bool) -> dict[str, torch.Tensor]:
    model.train()
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.zero_grad()
    model(TOKENS, labels=TOKENS).loss.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("method", METHODS)
def test_gradient_checkpointing_gives_the_plain_gradients(method, counted_clustering):
    plain = _grads(_model(method), checkpointing=False)
    ckpt = _grads(_model(method), checkpointing=True)
    assert plain.keys() == ckpt.keys() and len(plain) > 0
    assert any(g.abs().sum() > 0 for g in plain.values())
    for name in plain:
        torch.testing.assert_close(ckpt[name], plain[name], rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize("method", METHODS)
def test_inject_adapter_in_model_builds_what_get_peft_model_builds(method, counted_clustering):
    peft_model = _model(method)
    injected = inject_adapter_in_model(METHODS[method](), tiny_llama())
    inner = peft_model.base_model.model
    assert injected.state_dict().keys() == inner.state_dict().keys()
    injected.load_state_dict(inner.state_dict())
    torch.testing.assert_close(logits(injected.eval()), logits(peft_model))
    assert not torch.allclose(logits(injected), logits(tiny_llama().eval()))  # the adapter acts


@pytest.mark.parametrize("method", METHODS)
def test_modules_to_save_trains_a_copy_that_reloads(method, tmp_path, counted_clustering):
    model = _model(method, modules_to_save=["lm_head"])
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert any("lm_head.modules_to_save" in n for n in trainable)
    with torch.no_grad():
        head = model.base_model.model.lm_head.modules_to_save["default"]
        head.weight.add_(0.1 * torch.randn(head.weight.shape, generator=torch.Generator().manual_seed(1)))
    expected = logits(model)
    model.save_pretrained(tmp_path)
    reloaded = PeftModel.from_pretrained(tiny_llama(), tmp_path).eval()
    torch.testing.assert_close(logits(reloaded), expected)
    assert not torch.allclose(logits(tiny_llama().eval()), expected)


@pytest.mark.parametrize("method", METHODS)
def test_bf16_autocast_stays_close_to_fp32(method, counted_clustering):
    model = _model(method)
    fp32 = logits(model)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bf16 = logits(model)
    assert bf16.shape == fp32.shape and torch.isfinite(bf16).all()
    assert (bf16 - fp32).abs().max() < 0.05 * fp32.abs().max() + 0.05
