"""``make base_scale``: the RMS of B's input that it reports, for ID-LoRA and LoRA, against the same quantity computed
by hand from the layer's own rows of W, its router, and LoRA's A (tiny LLaMA, one prompt)."""

import torch

from idlora.bench.base_scale import b_input_rms, ratios_by_projection
from idlora.methods import apply_method
from idlora.models.tiny import tiny_llama, tiny_tokenizer

IDLORA = {"name": "idlora", "r": 4, "alpha": 8, "k": 2, "selection": "serial", "dropout": 0.05,
          "target_modules": ["q_proj", "v_proj"]}
LORA = {"name": "lora", "r": 4, "alpha": 8, "dropout": 0.05, "target_modules": ["q_proj", "v_proj"]}
NAME = "base_model.model.model.layers.1.self_attn.v_proj"


def _layer_input(model, name, tokens):
    seen = {}
    handle = model.get_submodule(name).register_forward_hook(lambda m, i, o: seen.setdefault("h", i[0]))
    with torch.no_grad():
        model(**tokens)
    handle.remove()
    return seen["h"]


def test_b_input_rms_is_the_rms_of_the_mixed_rows_and_of_lora_a():
    tok = tiny_tokenizer()
    prompt = "the cat sat on the mat"
    tokens = tok(prompt, return_tensors="pt")
    idlora = apply_method(tiny_llama(), IDLORA).eval()
    lora = apply_method(tiny_llama(), LORA).eval()
    got_i, got_l = b_input_rms(idlora, tok, [prompt]), b_input_rms(lora, tok, [prompt])
    assert set(got_i) == set(got_l) and NAME in got_i and len(got_i) == 4

    layer = idlora.get_submodule(NAME)
    h = _layer_input(idlora, NAME, tokens)  # (1, T, d_in)
    index = layer.idlora_index["default"]  # (k, r): rows S_i of W
    x = torch.stack([h @ layer.get_base_layer().weight[index[i]].T for i in range(index.shape[0])], dim=-2)
    alpha = torch.softmax(h @ layer.idlora_router["default"].weight.T, dim=-1)  # (1, T, k)
    mixed = (alpha.unsqueeze(-1) * x).sum(-2)  # sum_i alpha_i A_i h
    assert abs(got_i[NAME] - mixed.pow(2).mean().sqrt().item()) < 1e-5

    lora_layer = lora.get_submodule(NAME)
    h_l = _layer_input(lora, NAME, tokens)
    expected = (h_l @ lora_layer.lora_A["default"].weight.T).pow(2).mean().sqrt().item()
    assert abs(got_l[NAME] - expected) < 1e-5
    assert not layer._forward_hooks  # the hooks are gone


def test_ratios_group_layers_by_projection_type():
    a = {"m.layers.0.q_proj": 4.0, "m.layers.1.q_proj": 6.0, "m.layers.0.v_proj": 1.0}
    b = {"m.layers.0.q_proj": 2.0, "m.layers.1.q_proj": 2.0, "m.layers.0.v_proj": 0.5}
    per = ratios_by_projection(a, b)
    assert per == {"q_proj": {"mean": 2.5, "min": 2.0, "max": 3.0, "layers": 2},
                   "v_proj": {"mean": 2.0, "min": 2.0, "max": 2.0, "layers": 1}}
