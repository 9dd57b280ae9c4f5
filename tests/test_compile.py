"""``torch.compile`` of adapted models (issue 19): dynamo traces this package's adapter layers whole, with no graph
break inside them, in eval (the inference shortcut included) and train mode, for each forward Figure 3 times; and
the compiled forward computes what the eager one does. Backend ``eager``: the trace is what is checked, not kernels."""

import pytest
import torch

from idlora.bench.efficiency import _randomize_adapter
from idlora.methods import apply_method
from idlora.models.tiny import tiny_llama

CONFIGS = {"idlora": {"name": "idlora", "r": 4, "alpha": 8, "k": 4, "selection": "serial", "dropout": 0.05},
           "hydralora": {"name": "hydralora", "r": 4, "alpha": 8, "n_experts": 3, "dropout": 0.05},
           "moelora": {"name": "moelora", "r": 2, "alpha": 4, "n_experts": 4, "dropout": 0.05},
           "lori": {"name": "lori", "r": 4, "alpha": 8, "sparsity": 0.5, "dropout": 0.05}}
CONFIGS.update({f"{m}_official": {**CONFIGS[m], "impl": "official"} for m in ("hydralora", "moelora")})
IDS = torch.randint(3, 200, (2, 8), generator=torch.Generator().manual_seed(0))


def _model(method):
    torch._dynamo.reset()
    model = apply_method(tiny_llama(), CONFIGS[method])
    _randomize_adapter(model)
    return model


def _breaks_in_idlora(explanation) -> list[str]:
    return [str(b.reason) for b in explanation.break_reasons
            if any("/idlora/" in f.filename.replace("\\", "/") for f in b.user_stack)]


@pytest.mark.parametrize("method,mode", [("idlora", "eval"), ("idlora", "train"), ("hydralora_official", "eval"),
                                         ("moelora_official", "eval")])
def test_explain_finds_no_graph_break_in_the_adapter_layers(method, mode):
    model = _model(method).train(mode == "train")
    grad = torch.enable_grad() if mode == "train" else torch.no_grad()
    with grad:
        explanation = torch._dynamo.explain(model)(input_ids=IDS)
    assert _breaks_in_idlora(explanation) == []
    assert explanation.graph_break_count == 0, [str(b.reason) for b in explanation.break_reasons]


@pytest.mark.parametrize("method", list(CONFIGS))
def test_each_adapter_layer_compiles_as_one_graph_and_computes_the_eager_result(method):
    """fullgraph=True: dynamo raises at the first graph break. Eval without autograd (ID-LoRA's and ours' shortcut),
    with autograd, and train mode with dropout (ours vs compiled ours: the same masks from the same seed)."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    model = _model(method)
    layer = next(m for m in model.modules() if isinstance(m, BaseTunerLayer))
    h = torch.randn(2, 8, layer.in_features)
    compiled = torch.compile(layer, backend="eager", fullgraph=True)
    for mode, grad in (("eval", False), ("eval", True), ("train", True)):
        layer.train(mode == "train")
        with torch.set_grad_enabled(grad):
            torch.manual_seed(0)
            eager = layer(h)
            torch.manual_seed(0)
            out = compiled(h)
        torch.testing.assert_close(out, eager, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("method", ["idlora", "hydralora", "moelora", "lori"])
def test_the_whole_model_compiled_computes_the_eager_logits(method):
    model = _model(method).eval()
    with torch.no_grad():
        eager = model(input_ids=IDS).logits
        compiled = torch.compile(model, backend="eager", fullgraph=True)(input_ids=IDS).logits
    torch.testing.assert_close(compiled, eager, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("tokens,takes_it", [(1, True), (2, False)])
def test_compiled_decoding_step_takes_the_one_token_path_and_computes_the_eager_result(tokens, takes_it, monkeypatch):
    """Under torch.compile a one-token step goes through ``compiled_one_token_update`` (router and B as broadcast
    sums inductor fuses), traced whole; two tokens keep the GEMM path. Either way, the eager layer's output."""
    from idlora.tuners.idlora import layer as layer_mod

    calls = []
    real = layer_mod.compiled_one_token_update
    monkeypatch.setattr(layer_mod, "compiled_one_token_update", lambda *a: calls.append(1) or real(*a))
    model = _model("idlora").eval()
    layer = next(m for m in model.modules() if isinstance(m, layer_mod.IDLoRALayer))
    h = torch.randn(tokens, 1, layer.in_features)
    with torch.no_grad():
        eager = layer(h)
        assert calls == []  # eager never takes it
        out = torch.compile(layer, backend="eager", fullgraph=True)(h)
    assert bool(calls) == takes_it
    torch.testing.assert_close(out, eager, rtol=1e-5, atol=1e-6)
