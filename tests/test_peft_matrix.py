"""The PEFT checks for each of the four methods of this package (ID-LoRA, HydraLoRA, MoELoRA, LoRI): save/load in
both formats (safetensors and .bin), reload identity, disable/unload, merge refused by the routed three, two
adapters (add, set, delete, mixed batch), pickling, every loading path without re-clustering (clustering calls
counted), bf16 and fp16. Expected values come from independently built single-adapter models or from the base model
itself."""

import io
import pickle
import shutil

import pytest
import torch
from peft import AutoPeftModelForCausalLM, PeftConfig, PeftModel, get_peft_model
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from idlora import HydraLoRAConfig, IDLoRAConfig, LoRIConfig, MoELoRAConfig
from idlora import pmrc
from idlora.models.tiny import tiny_llama

METHODS = {
    "idlora": lambda **kw: IDLoRAConfig(r=4, k=2, alpha=8, **kw),
    "hydralora": lambda **kw: HydraLoRAConfig(r=4, alpha=8, n_experts=2, **kw),
    "moelora": lambda **kw: MoELoRAConfig(r=4, alpha=8, n_experts=2, **kw),
    "lori": lambda **kw: LoRIConfig(r=4, alpha=8, sparsity=0.5, **kw),
}
N_TARGETS = 2 * 7  # tiny_llama: 2 blocks x q,k,v,o,gate,up,down
TOKENS = torch.randint(3, 250, (3, 9), generator=torch.Generator().manual_seed(0))


def perturb(model, adapter: str = "default", seed: int = 0):
    """Give the adapter's trainable tensors (and LoRI's mask) random values, as training would; returns the model."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if f".{adapter}." in name or name.endswith(f".{adapter}"):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
        for name, b in model.named_buffers():
            if "lori_mask" in name and name.endswith(f".{adapter}"):
                b.copy_(torch.rand(b.shape, generator=gen) < 0.5)
    return model.eval()


def logits(model, tokens=TOKENS, **kwargs):
    with torch.no_grad():
        return model(tokens, **kwargs).logits.float()


def saved_adapter(method, path, seed=0, base_dir=None, safe_serialization=True, **cfg):
    """An adapter trained (perturbed) and saved to ``path``; returns the logits it gives."""
    model = perturb(get_peft_model(tiny_llama(), METHODS[method](seed=seed, **cfg)), seed=seed)
    if base_dir is not None:
        model.peft_config["default"].base_model_name_or_path = str(base_dir)
    model.save_pretrained(path, safe_serialization=safe_serialization)
    shutil.rmtree(pmrc.cache_root(), ignore_errors=True)  # load as on another machine: no PMRC cache to fall back on
    return logits(model)


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("base")
    tiny_llama().save_pretrained(path)
    return path


def _tf_load_adapter(path, base_dir):
    model = tiny_llama()
    model.load_adapter(str(path))
    return model


def _peft_second_adapter(path, base_dir, method):
    other = path.parent / "other"
    saved_adapter(method, other, seed=7)
    model = PeftModel.from_pretrained(tiny_llama(), other)
    model.load_adapter(path, adapter_name="second")
    model.set_adapter("second")
    return model


LOADERS = {
    "PeftModel.from_pretrained": lambda path, base_dir, m: PeftModel.from_pretrained(tiny_llama(), path),
    "PeftModel.from_pretrained(config=PeftConfig...)": lambda path, base_dir, m: PeftModel.from_pretrained(
        tiny_llama(), path, config=PeftConfig.from_pretrained(path)),
    "AutoPeftModelForCausalLM": lambda path, base_dir, m: AutoPeftModelForCausalLM.from_pretrained(path),
    "transformers load_adapter": lambda path, base_dir, m: _tf_load_adapter(path, base_dir),
    "AutoModelForCausalLM(adapter_dir)": lambda path, base_dir, m: AutoModelForCausalLM.from_pretrained(path),
    "PeftModel.load_adapter (second)": lambda path, base_dir, m: _peft_second_adapter(path, base_dir, m),
}


@pytest.mark.parametrize("loader", LOADERS)
@pytest.mark.parametrize("method", METHODS)
def test_every_loading_path_reloads_exactly_without_clustering(method, loader, base_dir, tmp_path,
                                                               counted_clustering):
    expected = saved_adapter(method, tmp_path / "adapter", base_dir=base_dir)
    assert len(counted_clustering) == (N_TARGETS if method == "idlora" else 0)
    counted_clustering.clear()
    loaded = LOADERS[loader](tmp_path / "adapter", base_dir, method).eval()
    got = logits(loaded)
    if loader == "PeftModel.load_adapter (second)" and method == "idlora":
        assert len(counted_clustering) == N_TARGETS  # the "other" adapter, made fresh with seed 7, clusters
    else:
        assert counted_clustering == []  # the rows came from the checkpoint
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    assert not torch.allclose(got, logits(tiny_llama()))  # the adapter does change the output


@pytest.mark.parametrize("method", METHODS)
def test_pickle_format_checkpoint_reloads_exactly_without_clustering(method, base_dir, tmp_path, counted_clustering):
    """``save_pretrained(safe_serialization=False)`` (adapter_model.bin), through the path that reads the rows from
    the checkpoint and the one that fills them from the loaded weights (transformers' own ``load_adapter`` reads
    only safetensors, for PEFT's LoRA too)."""
    expected = saved_adapter(method, tmp_path / "adapter", base_dir=base_dir, safe_serialization=False)
    assert sorted(p.name for p in (tmp_path / "adapter").glob("adapter_model.*")) == ["adapter_model.bin"]
    counted_clustering.clear()
    for loader in ("PeftModel.from_pretrained", "PeftModel.from_pretrained(config=PeftConfig...)"):
        got = logits(LOADERS[loader](tmp_path / "adapter", base_dir, method).eval())
        torch.testing.assert_close(got, expected, rtol=0, atol=0, msg=loader)
    assert counted_clustering == []
    assert not torch.allclose(expected, logits(tiny_llama()))


@pytest.mark.parametrize("method", ["idlora", "hydralora", "moelora"])
def test_routed_methods_refuse_to_merge_with_a_reason(method, counted_clustering):
    model = perturb(get_peft_model(tiny_llama(), METHODS[method]()))
    expected = logits(model)
    for merge in (model.merge_and_unload, model.merge_adapter):
        with pytest.raises(ValueError, match="cannot be merged.*router mixes"):
            merge()
    torch.testing.assert_close(logits(model), expected, rtol=0, atol=0)  # a refused merge changed nothing


@pytest.mark.parametrize("method", METHODS)
def test_disable_and_unload_give_the_base_model(method, counted_clustering):
    base = logits(tiny_llama())
    model = perturb(get_peft_model(tiny_llama(), METHODS[method]()))
    adapted = logits(model)
    assert not torch.allclose(adapted, base)
    with model.disable_adapter():
        torch.testing.assert_close(logits(model), base, rtol=0, atol=0)
    torch.testing.assert_close(logits(model), adapted, rtol=0, atol=0)
    if method == "lori":  # LoRA-shaped: merging is exact up to rounding
        torch.testing.assert_close(logits(model.merge_and_unload()), adapted, rtol=1e-4, atol=1e-5)
    else:
        torch.testing.assert_close(logits(model.unload()), base, rtol=0, atol=0)


@pytest.mark.parametrize("method", METHODS)
def test_two_adapters_add_set_delete_and_mixed_batch(method, tmp_path, counted_clustering):
    base = logits(tiny_llama())
    first = saved_adapter(method, tmp_path / "a", seed=0)
    second = saved_adapter(method, tmp_path / "b", seed=1, target_modules=["q_proj", "v_proj", "down_proj"])
    counted_clustering.clear()
    model = PeftModel.from_pretrained(tiny_llama(), tmp_path / "a")
    model.load_adapter(tmp_path / "b", adapter_name="second")
    assert counted_clustering == []
    if method == "idlora":  # each adapter keeps the rows of its own checkpoint (seeds 0 and 1 select other rows)
        q = model.base_model.model.model.layers[0].self_attn.q_proj
        key = "base_model.model.model.layers.0.self_attn.q_proj.idlora_index"
        for name, saved in (("default", "a"), ("second", "b")):
            assert torch.equal(q.idlora_index[name], load_file(tmp_path / saved / "adapter_model.safetensors")[key])
        assert not torch.equal(q.idlora_index["default"], q.idlora_index["second"])
    model.eval()
    torch.testing.assert_close(logits(model), first, rtol=0, atol=0)  # loading does not change the active one
    model.set_adapter("second")
    torch.testing.assert_close(logits(model), second, rtol=0, atol=0)

    mixed = logits(model, adapter_names=["second", "__base__", "default"])
    for row, want in enumerate([second, base, first]):
        torch.testing.assert_close(mixed[row], want[row], rtol=0, atol=1e-6)

    model.add_adapter("third", METHODS[method](seed=3, target_modules=["o_proj"]))  # untrained: B = 0
    assert len(counted_clustering) == (2 if method == "idlora" else 0)  # its own modules only
    model.set_adapter("third")
    torch.testing.assert_close(logits(model), base, rtol=0, atol=0)

    model.delete_adapter("second")
    model.set_adapter("default")
    assert "second" not in model.peft_config
    layer = model.base_model.model.model.layers[0].self_attn.q_proj
    assert all("second" not in getattr(layer, n) for n in layer.adapter_layer_names)
    torch.testing.assert_close(logits(model), first, rtol=0, atol=0)


def test_mixed_batch_bad_names_are_one_clear_error(counted_clustering):
    model = perturb(get_peft_model(tiny_llama(), METHODS["idlora"]()))
    with pytest.raises(ValueError, match=r"unknown adapter\(s\) \['typo'\]"):
        logits(model, adapter_names=["default", "typo", "__base__"])
    with pytest.raises(ValueError, match="one per sample"):
        logits(model, adapter_names=["default"])


@pytest.mark.parametrize("method", METHODS)
def test_whole_model_pickles(method, counted_clustering):
    model = perturb(get_peft_model(tiny_llama(), METHODS[method]()))
    expected = logits(model)
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    torch.testing.assert_close(logits(torch.load(buffer, weights_only=False)), expected, rtol=0, atol=0)
    torch.testing.assert_close(logits(pickle.loads(pickle.dumps(model))), expected, rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("method", METHODS)
def test_half_precision_base_trains_and_reloads(method, dtype, tmp_path, counted_clustering):
    model = get_peft_model(tiny_llama().to(dtype), METHODS[method]())
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert trainable and all(p.dtype == torch.float32 for p in trainable)  # PEFT's autocast of adapter weights
    model.train()
    loss = model(TOKENS, labels=TOKENS).loss
    loss.backward()
    assert torch.isfinite(loss) and all(p.grad is not None and torch.isfinite(p.grad).all() for p in trainable)
    perturb(model)
    expected = logits(model)
    assert torch.isfinite(expected).all()
    model.save_pretrained(tmp_path)
    shutil.rmtree(pmrc.cache_root(), ignore_errors=True)
    counted_clustering.clear()
    loaded = PeftModel.from_pretrained(tiny_llama().to(dtype), tmp_path).eval()
    assert counted_clustering == []
    torch.testing.assert_close(logits(loaded), expected, rtol=0, atol=0)


def test_saved_config_without_its_weights_refuses_to_run(tmp_path, counted_clustering):
    saved_adapter("idlora", tmp_path)
    counted_clustering.clear()
    model = get_peft_model(tiny_llama(), PeftConfig.from_pretrained(tmp_path))  # config only, no weights
    assert counted_clustering == []
    with pytest.raises(RuntimeError, match="never loaded.*PeftModel.from_pretrained"):
        logits(model)


def test_lori_broken_merge_uses_peft_wording():
    model = get_peft_model(tiny_llama(), METHODS["lori"]())
    with torch.no_grad():
        model.base_model.model.model.layers[0].self_attn.q_proj.lori_B["default"].weight.fill_(float("inf"))
    with pytest.raises(ValueError, match="NaNs detected in the merged weights. The adapter default seems to be broken"):
        model.merge_adapter(safe_merge=True)


@pytest.mark.parametrize("method", METHODS)
def test_saved_model_card_says_how_to_load(method, tmp_path, counted_clustering):
    saved_adapter(method, tmp_path / "peft")
    model = tiny_llama()
    model.add_adapter(METHODS[method]())  # transformers' own adapter API and save path
    model.save_pretrained(tmp_path / "transformers")
    for path in ("peft", "transformers"):
        card = (tmp_path / path / "README.md").read_text()
        assert "import idlora" in card and f"KeyError: '{method.upper()}'" in card, path
        assert "python -m idlora.lm_eval" in card and card.count("## Loading this adapter") == 1, path


def test_lm_eval_entry_point_accepts_a_run_directory(tmp_path):
    from idlora.lm_eval import resolve_peft_arg

    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "adapter_config.json").write_text("{}")
    args = ["--model_args", f"pretrained=base,peft={tmp_path},dtype=float32", "--tasks", "x"]
    assert resolve_peft_arg(args)[1] == f"pretrained=base,peft={tmp_path / 'adapter'},dtype=float32"
    assert resolve_peft_arg([f"peft={tmp_path / 'adapter'}"]) == [f"peft={tmp_path / 'adapter'}"]
