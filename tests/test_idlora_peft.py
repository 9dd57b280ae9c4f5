"""ID-LoRA inside PEFT: bad input fails early and clearly, row indices are cached and travel with the adapter."""

import pytest
import torch
from peft import PeftModel, get_peft_model
from safetensors.torch import load_file, save_file

from idlora import IDLoRAConfig
from idlora import pmrc
from idlora.models.tiny import tiny_llama

TOKENS = torch.randint(3, 250, (1, 9), generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("kwargs,match", [
    ({"r": 5}, "r must be even"),
    ({"r": 0}, "positive integer"),
    ({"r": -4}, "positive integer"),
    ({"k": 0}, "k .* >= 1"),
    ({"selection": "kmeans"}, "unknown selection .kmeans.; valid: pmrc, serial, random, svd, gaussian"),
    ({"router": "mlp"}, "unknown router 'mlp'; valid: linear, inner, text, uniform"),
    ({"r": 6, "rb_parts": 4}, "r must be divisible by 4; got r=6"),
    ({"dropout_position": "output"}, "unknown dropout_position"),
    ({"dropout": 1.5}, "dropout must be in"),
])
def test_bad_config_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        IDLoRAConfig(**kwargs)


def test_too_many_rows_names_module_values_and_fix(counted_clustering):
    # tiny_llama's k_proj/v_proj have d_out = 32 < k*r = 4*16
    with pytest.raises(ValueError, match=r"k_proj.*d_out=32.*Lower method.r to at most 8"):
        get_peft_model(tiny_llama(), IDLoRAConfig(r=16, k=4))
    assert counted_clustering == []  # failed before any clustering


def test_rb_factor_that_does_not_divide_d_out_fails_before_clustering(counted_clustering):
    # r=6 splits in 3 parts, but tiny_llama's projections have d_out in {32, 64, 128}
    with pytest.raises(ValueError, match=r"rb_parts=3 splits the output of '.*' in 3 parts, but d_out=\d+ is not "
                                         r"divisible by 3\. Set method.rb_parts to a divisor"):
        get_peft_model(tiny_llama(), IDLoRAConfig(r=6, k=2, rb_parts=3))
    assert counted_clustering == []


def test_target_that_matches_nothing():
    with pytest.raises(ValueError, match=r"\['qq_proj'\] match no linear layer.*q_proj"):
        get_peft_model(tiny_llama(), IDLoRAConfig(r=4, k=2, selection="serial", target_modules=["q_proj", "qq_proj"]))


def test_merge_is_refused_with_a_reason():
    model = get_peft_model(tiny_llama(), IDLoRAConfig(r=4, k=2, selection="serial"))
    with pytest.raises(ValueError, match="cannot be merged"):
        model.merge_and_unload()


def test_pmrc_is_cached_and_loading_never_clusters(counted_clustering, tmp_path):
    cfg = dict(r=8, k=4, alpha=16)
    model = get_peft_model(tiny_llama(), IDLoRAConfig(**cfg))
    n_modules = 2 * 7
    assert len(counted_clustering) == n_modules
    get_peft_model(tiny_llama(), IDLoRAConfig(**cfg))  # same weights, same settings: from the cache
    assert len(counted_clustering) == n_modules
    get_peft_model(tiny_llama(), IDLoRAConfig(**cfg, seed=1))  # another seed is another artifact
    assert len(counted_clustering) == 2 * n_modules

    layer = model.base_model.model.model.layers[1].mlp.up_proj
    expected_index = pmrc.pmrc_rows(layer.get_base_layer().weight, 4, 8, 0)
    assert torch.equal(layer.idlora_index["default"], expected_index)

    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.normal_(std=0.05)
    model.eval()
    expected = model(TOKENS).logits
    model.save_pretrained(tmp_path)
    counted_clustering.clear()
    loaded = PeftModel.from_pretrained(tiny_llama(), tmp_path).eval()
    assert counted_clustering == []  # indices came from the checkpoint
    torch.testing.assert_close(loaded(TOKENS).logits, expected, rtol=0, atol=0)


def test_checkpoint_without_indices_is_an_error(tmp_path):
    model = get_peft_model(tiny_llama(), IDLoRAConfig(r=4, k=2, selection="random"))
    model.save_pretrained(tmp_path)
    path = tmp_path / "adapter_model.safetensors"
    sd = load_file(path)
    save_file({k: v for k, v in sd.items() if "idlora_index" not in k}, path)
    with pytest.raises(ValueError, match="has no idlora_index for module"):
        PeftModel.from_pretrained(tiny_llama(), tmp_path)


def test_corrupt_cache_entry_is_recomputed(counted_clustering):
    get_peft_model(tiny_llama(), IDLoRAConfig(r=8, k=4))
    files = sorted(pmrc.cache_root().rglob("*.pt"))
    assert len(files) == 14
    files[0].write_bytes(b"not a torch file")
    counted_clustering.clear()
    get_peft_model(tiny_llama(), IDLoRAConfig(r=8, k=4))
    assert len(counted_clustering) == 1


def test_meta_device_model_needs_no_weights():
    from transformers import AutoModelForCausalLM

    cfg = tiny_llama().config
    with torch.device("meta"):
        model = get_peft_model(AutoModelForCausalLM.from_config(cfg), IDLoRAConfig(r=8, k=4))
    layer = model.base_model.model.model.layers[0].self_attn.q_proj
    assert layer.idlora_index["default"].is_meta and layer.idlora_B["default"].weight.is_meta
