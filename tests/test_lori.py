"""LoRI (the reviewers' baseline): the forward against its formula written out, masks that keep B's masked
entries at exactly zero through training, model-wise magnitude masks against an independent computation, the
adapter round trip with its frozen A and mask, and the LoRI-D -> LoRI-S calibration inside a training run."""

import json
import os

import numpy as np
import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file

from idlora.config import compose
from idlora.methods import apply_method, count_parameters
from idlora.models.tiny import tiny_llama
from idlora.training.loop import run
from idlora.training.recipes import train_lr as effective_lr
from idlora.tuners.lori import LoRIConfig, LoRILayer, magnitude_masks

TOKENS = torch.randint(3, 250, (2, 10), generator=torch.Generator().manual_seed(0))


def _layers(model):
    return {n: m for n, m in model.named_modules() if isinstance(m, LoRILayer)}


def _random_state(model, seed=0):
    """Random B and a random ~30%-dense mask on every layer; returns {name: (B, M)}."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name, layer in _layers(model).items():
        B = layer.lori_B["default"].weight
        with torch.no_grad():
            B.copy_(torch.randn(B.shape, generator=g) * 0.1)
        M = (torch.rand(B.shape, generator=g) < 0.3).float()
        layer.set_mask("default", M)
        out[name] = (B.detach().clone(), M)
    return out


def test_forward_is_the_formula():
    torch.manual_seed(0)
    model = apply_method(tiny_llama(), {"name": "lori", "r": 4, "alpha": 12, "dropout": 0.1}).eval()
    _random_state(model)
    for layer in _layers(model).values():
        h = torch.randn(3, 5, layer.in_features, dtype=torch.float64)
        W = layer.get_base_layer().weight.double()
        A = layer.lori_A["default"].double()
        B = layer.lori_B["default"].weight.double()
        M = layer.lori_mask["default"].double()
        expected = h @ W.T + (12 / 4) * (h @ A.T) @ (B * M).T  # u = W h + (alpha/r) (B ⊙ M) A h
        got = layer.double()(h)
        torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)


def test_a_is_frozen_and_masked_entries_of_b_stay_zero_through_adamw():
    model = apply_method(tiny_llama(), {"name": "lori", "r": 4, "alpha": 8, "sparsity": 0.9})
    state = _random_state(model)
    A0 = {n: l.lori_A["default"].clone() for n, l in _layers(model).items()}
    for name, layer in _layers(model).items():  # a masked entry is zero from the start (set_mask zeroes it)
        assert (layer.lori_B["default"].weight[state[name][1] == 0] == 0).all()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-2, weight_decay=0.1)
    model.train()
    for _ in range(3):
        model(TOKENS, labels=TOKENS).loss.backward()
        opt.step()
        opt.zero_grad()
    for name, layer in _layers(model).items():
        B, M = layer.lori_B["default"].weight, state[name][1]
        assert (B[M == 0] == 0).all(), name
        assert not torch.equal(B[M == 1], state[name][0][M == 1]), name  # the kept entries did train
        assert torch.equal(layer.lori_A["default"], A0[name])
    assert all(not p.requires_grad for n, p in model.named_parameters() if "lori_A" in n)


def test_magnitude_masks_match_an_independent_model_wise_threshold():
    g = torch.Generator().manual_seed(3)
    bs = {"a": torch.randn(16, 4, generator=g), "b": 3 * torch.randn(8, 4, generator=g), "c": torch.randn(32, 4)}
    masks = magnitude_masks(bs, 0.9)
    values = np.concatenate([b.abs().numpy().ravel() for b in bs.values()])  # 224 entries; keep round(22.4) = 22
    threshold = np.sort(values)[::-1][21]
    for name, b in bs.items():
        np.testing.assert_array_equal(masks[name].numpy(), b.abs().numpy() >= threshold)
    assert sum(int(m.sum()) for m in masks.values()) == 22
    # model-wise, not per matrix: the larger-scale matrix keeps more than its 10% share
    assert masks["b"].float().mean() > 0.1 > masks["c"].float().mean()
    with pytest.raises(ValueError, match="all zeros"):
        magnitude_masks({"z": torch.zeros(4, 2)}, 0.5)


def test_round_trip_keeps_a_and_the_mask_and_merge_is_exact(tmp_path):
    model = apply_method(tiny_llama(), {"name": "lori", "r": 4, "alpha": 8}).eval()
    state = _random_state(model, seed=1)
    expected = model(TOKENS).logits
    model.save_pretrained(tmp_path)
    saved = load_file(str(tmp_path / "adapter_model.safetensors"))
    assert any(k.endswith("lori_A") for k in saved) and any(k.endswith("lori_mask") for k in saved)
    loaded = PeftModel.from_pretrained(tiny_llama(), tmp_path).eval()
    torch.testing.assert_close(loaded(TOKENS).logits, expected, rtol=0, atol=0)
    for name, layer in _layers(loaded).items():
        assert torch.equal(layer.lori_mask["default"], state[name][1])
    merged = loaded.merge_and_unload()
    torch.testing.assert_close(merged(TOKENS).logits, expected, rtol=1e-5, atol=1e-5)


def test_config_rejects_bad_sparsity():
    from idlora.errors import ConfigError
    from idlora.methods import build_peft_config

    for bad in (1.0, -0.1, "0.9", True):
        with pytest.raises((ValueError, ConfigError), match="sparsity"):
            build_peft_config({"name": "lori", "r": 4, "sparsity": bad})
    assert LoRIConfig(r=4, sparsity=0).sparsity == 0.0


def test_training_calibrates_lori_d_then_trains_lori_s_under_the_mask(tmp_path):
    overrides = ["experiment=gsm8k_llama3", "scale=tiny", "train.wandb=false", "evaluate_after_training=false",
                 f"output_root={tmp_path}/runs", f"results_dir={tmp_path}/results", "method=lori",
                 "data.limit=8", "train.max_steps=4", "train.save_steps=0", "method.sparsity=0.75"]
    cfg = compose(overrides)
    out = run(cfg)
    record = json.loads(out["results_path"].read_text())
    info = record["train"]["lori"]
    dense = json.loads(open(info["calibration_run"]).read())
    assert dense["config"]["method"]["sparsity"] == 0.0
    assert record["train"]["lr"] == pytest.approx(10 * dense["train"]["lr"]) == pytest.approx(effective_lr(cfg))
    # the saved LoRI-S adapter: masks keep ~25% of B model-wide, B is zero wherever the mask is
    adapter = load_file(str(tmp_path / "runs" / cfg.run_id / "adapter" / "adapter_model.safetensors"))
    masks = {k[: -len(".lori_mask")]: v for k, v in adapter.items() if k.endswith(".lori_mask")}
    kept = sum(int(m.sum()) for m in masks.values()) / sum(m.numel() for m in masks.values())
    assert kept == pytest.approx(0.25, abs=0.01) == pytest.approx(info["mask_density"])
    for prefix, m in masks.items():
        B = adapter[prefix + ".lori_B.weight"]
        assert (B[m == 0] == 0).all() and (B[m == 1] != 0).any()
    # the masks are LoRI-D's largest entries (recomputed from its saved adapter)
    d_adapter = load_file(str(tmp_path / "runs" / cfg.run_id / "calibration" / f"{cfg.run_id}.lori_d" / "adapter"
                               / "adapter_model.safetensors"))
    d_b = {k[: -len(".lori_B.weight")]: v for k, v in d_adapter.items() if k.endswith(".lori_B.weight")}
    again = magnitude_masks(d_b, 0.75)
    for prefix, m in masks.items():
        assert torch.equal(m.bool(), again[prefix])
    assert record["trainable_params"] == sum(int(m.sum()) for m in masks.values())
    # running it again (a retried or resumed job) reuses the calibration run instead of training it again
    calib_mtime = os.stat(info["calibration_run"]).st_mtime_ns
    again_out = run(cfg)
    assert os.stat(info["calibration_run"]).st_mtime_ns == calib_mtime
    assert again_out["loss_curve"] == out["loss_curve"]


def test_the_method_config_and_table6_use_the_peft_default_sparsity():
    from idlora.param_counts import LORI_SPARSITY

    cfg = compose(["experiment=gsm8k_llama3", "method=lori"])
    assert cfg.method.sparsity == LORI_SPARSITY == LoRIConfig(r=4).sparsity


def test_the_generic_loop_names_no_method_and_lori_goes_through_its_recipe():
    """LoRI's two stages are a recipe the loop calls (``training.recipes``), not branches on the method's name."""
    import ast
    from pathlib import Path

    from omegaconf import OmegaConf

    from idlora.training import loop
    from idlora.training.recipes import LoRIRecipe, Recipe, recipe_for

    names = {n.value for n in ast.walk(ast.parse(Path(loop.__file__).read_text()))
             if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    assert "lori" not in names
    assert isinstance(recipe_for(OmegaConf.create({"name": "lori"})), LoRIRecipe)
    assert type(recipe_for(OmegaConf.create({"name": "idlora"}))) is Recipe
    dense = OmegaConf.create({"name": "lori", "sparsity": 0.0})
    assert recipe_for(dense).prepare(OmegaConf.create({"method": dense}), model=None) is None


def test_magnitude_masks_keep_exactly_the_share_asked_even_with_ties():
    """A B stored in bf16 has few distinct magnitudes: the mask still keeps exactly round((1 - s) N) entries, the
    largest first and ties by position (module order, then row-major)."""
    import torch

    from idlora.tuners.lori.model import magnitude_masks

    b = {"a": torch.tensor([[0.5, 0.25], [0.25, 0.25]]), "b": torch.tensor([[0.25, 0.0], [0.25, 0.125]])}
    masks = magnitude_masks(b, sparsity=0.75)  # 8 entries: keep 2, the 0.5 and the first 0.25
    assert masks["a"].tolist() == [[True, True], [False, False]] and not masks["b"].any()
    bf16 = {"x": torch.full((64, 8), 0.01).to(torch.bfloat16)}  # every magnitude tied
    assert int(magnitude_masks(bf16, sparsity=0.9)["x"].sum()) == round(0.1 * 64 * 8)
