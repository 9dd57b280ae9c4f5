"""Every method through the same checks (PEFT's test style): forward, backward, only adapter weights trainable,
zero-init equals the base model, save/load round trip, on tiny random LLaMA and Mistral models."""

import pytest
import torch
from peft import PeftModel

from idlora.methods import apply_method, build_peft_config, count_parameters
from idlora.models.tiny import tiny_llama, tiny_mistral

MODELS = {"tiny_llama": tiny_llama, "tiny_mistral": tiny_mistral}
METHOD_CASES = {
    "lora": {"name": "lora", "r": 4, "alpha": 8, "dropout": 0.05},
    "dora": {"name": "dora", "r": 4, "alpha": 8, "dropout": 0.05},
    "hydralora": {"name": "hydralora", "r": 4, "alpha": 8, "dropout": 0.05},
    "moelora": {"name": "moelora", "r": 4, "alpha": 8, "dropout": 0.05},
    "lori": {"name": "lori", "r": 4, "alpha": 8, "dropout": 0.05, "sparsity": 0.9},
    "idlora_pmrc": {"name": "idlora", "r": 8, "k": 4, "alpha": 16, "dropout": 0.05, "pmrc_backend": "torch"},
    "idlora_serial_norb": {"name": "idlora", "r": 4, "k": 2, "alpha": 8, "selection": "serial",
                           "rank_boosting": False},
    "idlora_random_inner_rows": {"name": "idlora", "r": 8, "k": 4, "alpha": 16, "dropout": 0.05,
                                 "selection": "random", "router": "inner", "dropout_position": "rows"},
    "idlora_text_router": {"name": "idlora", "r": 8, "k": 4, "alpha": 16, "dropout": 0.05, "selection": "serial",
                           "router": "text"},
    "idlora_uniform_router_rb4": {"name": "idlora", "r": 8, "k": 4, "alpha": 16, "dropout": 0.05,
                                  "selection": "serial", "router": "uniform", "rb_parts": 4},
}
TOKENS = torch.randint(3, 250, (2, 12), generator=torch.Generator().manual_seed(0))


def _perturb_adapter(model):
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=g) * 0.05)


@pytest.mark.parametrize("model_name", list(MODELS))
@pytest.mark.parametrize("case", list(METHOD_CASES))
def test_method_matrix(model_name, case, tmp_path):
    base_logits = MODELS[model_name]()(TOKENS).logits
    model = apply_method(MODELS[model_name](), METHOD_CASES[case])
    model.eval()
    # zero-init: at step 0 the adapted model is the base model
    torch.testing.assert_close(model(TOKENS).logits, base_logits, rtol=0, atol=1e-6)

    # only adapter weights are trainable, and they all receive a gradient
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(("base_layer" not in n and "embed" not in n and "norm" not in n) for n in trainable)
    model.train()
    _perturb_adapter(model)  # B = 0 makes dL/dA = 0; move off zero so every tensor gets a gradient
    loss = model(TOKENS, labels=TOKENS).loss
    loss.backward()
    for n, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and torch.isfinite(p.grad).all(), n
        else:
            assert p.grad is None, n

    # save / load round trip gives identical outputs
    model.eval()
    expected = model(TOKENS).logits
    model.save_pretrained(tmp_path)
    loaded = PeftModel.from_pretrained(MODELS[model_name](), tmp_path).eval()
    torch.testing.assert_close(loaded(TOKENS).logits, expected, rtol=0, atol=0)


def test_fft_makes_everything_trainable():
    model = apply_method(tiny_llama(), {"name": "fft"})
    trainable, total = count_parameters(model)
    assert trainable == total > 0


@pytest.mark.parametrize("model_fn", [tiny_llama, tiny_mistral])
def test_parameter_counts_follow_design_formulas(model_fn):
    """docs/DESIGN.md §1's closed forms, summed over the tiny model's modules, against the instantiated adapters."""
    shapes = [(m.in_features, m.out_features) for n, m in model_fn().named_modules()
              if n.rsplit(".", 1)[-1] in ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")]
    r, k = 8, 4
    formulas = {
        "lora": sum(r * (i + o) for i, o in shapes),
        "dora": sum(r * (i + o) + o for i, o in shapes),
        "hydralora": sum(r * i + 3 * o * r + 3 * i for i, o in shapes),
        "moelora": sum(4 * r * (i + o) + 4 * i for i, o in shapes),
        "idlora": sum(o * r // 4 + k * i for i, o in shapes),
    }
    for method, expected in formulas.items():
        cfg = {"name": method, "r": r, "alpha": 2 * r}
        if method == "idlora":
            cfg["selection"] = "serial"
        trainable, _ = count_parameters(apply_method(model_fn(), cfg))
        assert trainable == expected, method
    no_rb = apply_method(model_fn(), {"name": "idlora", "r": r, "k": k, "selection": "serial", "rank_boosting": False})
    assert count_parameters(no_rb)[0] == sum(o * r + k * i for i, o in shapes)
    # the Rank Boosting factor m: B of (d_out/m, r/m); the routers: text and inner train T (r), uniform nothing
    variants = {(("rb_parts", 4),): sum(o * r // 16 + k * i for i, o in shapes),
                (("router", "text"),): sum(o * r // 4 + r for i, o in shapes),
                (("router", "inner"),): sum(o * r // 4 + r for i, o in shapes),
                (("router", "uniform"),): sum(o * r // 4 for i, o in shapes),
                (("router", "uniform"), ("rb_parts", 8)): sum(o * r // 64 for i, o in shapes)}
    for overrides, expected in variants.items():
        cfg = {"name": "idlora", "r": r, "k": k, "selection": "serial", **dict(overrides)}
        assert count_parameters(apply_method(model_fn(), cfg))[0] == expected, overrides


def test_unknown_method_and_misplaced_keys_are_config_errors():
    from idlora.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown method 'lorax'.*idlora, lora"):
        build_peft_config({"name": "lorax"})
    with pytest.raises(ConfigError, match=r"does not take \['k'\]"):
        build_peft_config({"name": "lora", "r": 8, "k": 6})
