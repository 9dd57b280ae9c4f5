"""HydraLoRA and MoELoRA layers against their literal formulas, one token and one expert at a time:

    HydraLoRA: u = W h + b + (alpha/r) sum_j g_j B_j A h          (one shared A)
    MoELoRA:   u = W h + b + (alpha/r) sum_j g_j B_j A_j h        (n experts' A_j)
    g = softmax(G h)

and the float32 inference shortcut against the general path, bit for bit (Figure 3 times the shortcut)."""

import itertools

import pytest
import torch
from torch import nn

from idlora.tuners.hydralora import HydraLoRAConfig
from idlora.tuners.hydralora.layer import Linear as HydraLinear
from idlora.tuners.moelora import MoELoRAConfig
from idlora.tuners.moelora.layer import Linear as MoELinear

D_IN, D_OUT, R, N = 10, 14, 3, 3
KINDS = {"hydralora": (HydraLoRAConfig, HydraLinear, "hydralora_"), "moelora": (MoELoRAConfig, MoELinear, "moelora_")}


def make_layer(kind, bias, dtype=torch.float64):
    config_cls, linear_cls, prefix = KINDS[kind]
    torch.manual_seed(0)
    base = nn.Linear(D_IN, D_OUT, bias=bias)
    cfg = config_cls(r=R, alpha=6, n_experts=N, dropout=0.2, target_modules=["x"])
    layer = linear_cls(base, "default", cfg, module_name="x").to(dtype)
    for part in ("A", "B", "router"):
        nn.init.normal_(getattr(layer, prefix + part)["default"].weight, std=0.5)  # B is zero at init
    return layer


def literal(layer, kind, h):
    prefix = KINDS[kind][2]
    base = layer.get_base_layer()
    A, B, G = (getattr(layer, prefix + p)["default"].weight.double() for p in ("A", "B", "router"))
    out = torch.empty(h.shape[0], D_OUT, dtype=torch.float64)
    for t, ht in enumerate(h.double()):
        g = torch.softmax(torch.stack([G[j] @ ht for j in range(N)]), 0)
        total = torch.zeros(D_OUT, dtype=torch.float64)
        for j in range(N):
            A_j = A if kind == "hydralora" else A[j * R:(j + 1) * R]  # (r, d_in)
            B_j = B[:, j * R:(j + 1) * R]  # (d_out, r): head j's columns
            total += g[j] * (B_j @ (A_j @ ht))
        out[t] = base.weight.double() @ ht + (base.bias.double() if base.bias is not None else 0) \
            + layer.scaling["default"] * total
    return out


@pytest.mark.parametrize("kind,bias", list(itertools.product(KINDS, [False, True])))
def test_eval_forward_equals_literal_formula(kind, bias):
    layer = make_layer(kind, bias).eval()
    h = torch.randn(6, D_IN, dtype=torch.float64)
    torch.testing.assert_close(layer(h), literal(layer, kind, h), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(layer(h.reshape(2, 3, D_IN)).reshape(6, D_OUT), literal(layer, kind, h),
                               rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("kind,bias", list(itertools.product(KINDS, [False, True])))
def test_float32_inference_shortcut_is_the_general_path_bit_for_bit(kind, bias, monkeypatch):
    layer = make_layer(kind, bias, torch.float32).eval()
    h = torch.randn(2, 5, D_IN)
    cls = type(layer)
    taken = []
    shortcut = cls._inference_update

    def spy(self, *args):
        out = shortcut(self, *args)
        taken.append(out is not None)
        return out

    monkeypatch.setattr(cls, "_inference_update", spy)
    with torch.no_grad():
        fast = layer(h)
    assert taken == [True]
    monkeypatch.setattr(cls, "_inference_update", lambda self, *args: None)
    with torch.no_grad():
        general = layer(h)
    assert torch.equal(fast, general)
    torch.testing.assert_close(fast.double().reshape(10, D_OUT), literal(layer, kind, h.reshape(10, D_IN)),
                               rtol=1e-5, atol=1e-5)


def test_training_mode_does_not_take_the_shortcut():
    layer = make_layer("hydralora", False, torch.float32).train()
    with torch.no_grad():
        a = layer(torch.ones(4, D_IN))
        b = layer(torch.ones(4, D_IN))
    assert not torch.equal(a, b)  # dropout on the adapter path: the general path ran


def make_pair(kind, bias, dtype, dropout):
    """The layer with impl=ours and with impl=official, the same weights."""
    config_cls, linear_cls, prefix = KINDS[kind]
    layers = []
    for impl in ("ours", "official"):
        torch.manual_seed(0)
        base = nn.Linear(D_IN, D_OUT, bias=bias)
        cfg = config_cls(r=R, alpha=6, n_experts=N, dropout=dropout, target_modules=["x"], impl=impl)
        layer = linear_cls(base, "default", cfg, module_name="x").to(dtype)
        torch.manual_seed(1)
        for part in ("A", "B", "router"):
            nn.init.normal_(getattr(layer, prefix + part)["default"].weight, std=0.5)
        layers.append(layer)
    return layers


@pytest.mark.parametrize("kind,bias,dtype", list(itertools.product(KINDS, [False, True],
                                                                   [torch.float32, torch.float64])))
def test_official_forward_equals_ours_in_eval_and_train_mode(kind, bias, dtype):
    """impl=official (the official code's loop over the experts) is the same function as ours: equal outputs in eval
    mode, with and without autograd, and in train mode (dropout 0: their per-head masks differ from ours) with equal
    gradients of every adapter tensor and of the input."""
    tol = {"rtol": 1e-5, "atol": 1e-5} if dtype == torch.float32 else {"rtol": 1e-12, "atol": 1e-12}
    if kind == "hydralora" and dtype == torch.float64:  # its official softmax runs in float32 whatever the dtype
        tol = {"rtol": 1e-5, "atol": 1e-5}
    h = torch.randn(2, 5, D_IN, dtype=dtype)
    ours, official = (layer.eval() for layer in make_pair(kind, bias, dtype, dropout=0.2))
    with torch.no_grad():
        torch.testing.assert_close(official(h), ours(h), **tol)
    torch.testing.assert_close(official(h), ours(h), **tol)
    ours, official = (layer.train() for layer in make_pair(kind, bias, dtype, dropout=0.0))
    grads = []
    for layer in (ours, official):
        x = h.clone().requires_grad_(True)
        out = layer(x)
        (out * torch.linspace(-1, 1, D_OUT, dtype=dtype)).sum().backward()
        grads.append([out.detach(), x.grad] + [p.grad for p in layer.parameters() if p.requires_grad])
    assert len(grads[0]) == len(grads[1]) >= 5 and all(g is not None for g in grads[1])  # output, input, A, B, G, ...
    for a, b in zip(*grads):
        torch.testing.assert_close(b, a, **tol)


def test_official_forward_draws_a_dropout_mask_per_head_as_the_official_code():
    """Ours applies the adapter's dropout to h once; the official code once per head (HydraLoRA) or expert (MoELoRA)."""
    for kind, prefix in (("hydralora", "hydralora_"), ("moelora", "moelora_")):
        calls = {}
        for impl, layer in zip(("ours", "official"), make_pair(kind, False, torch.float32, dropout=0.2)):
            drop = getattr(layer, prefix + "dropout")["default"]
            calls[impl] = 0
            drop.register_forward_hook(lambda *a, impl=impl: calls.__setitem__(impl, calls[impl] + 1))
            layer.train()(torch.randn(3, D_IN))
        assert calls == {"ours": 1, "official": N}


def test_impl_is_refused_where_there_is_no_official_forward():
    from idlora.config import compose
    from idlora.errors import ConfigError
    from idlora.methods import build_peft_config

    assert build_peft_config({"name": "hydralora", "r": 2, "impl": "official"}).impl == "official"
    assert build_peft_config({"name": "moelora", "r": 2}).impl == "ours"
    assert build_peft_config({"name": "lora", "r": 2, "impl": "ours"}).r == 2
    with pytest.raises(ConfigError, match=r"method 'lora' has no official implementation .* only hydralora, moelora"):
        build_peft_config(compose(["scale=tiny", "method=lora", "method.impl=official"]).method)
    for name in ("idlora", "dora", "fft"):
        with pytest.raises(ConfigError, match=f"method '{name}' has no official implementation"):
            build_peft_config({"name": name, "impl": "official"})
    with pytest.raises(ConfigError, match=r"method.impl='fast' is not valid; valid: ours, official"):
        build_peft_config({"name": "hydralora", "impl": "fast"})
    with pytest.raises(ValueError, match="impl must be one of ours, official"):
        MoELoRAConfig(impl="theirs")


def test_impl_ours_keeps_the_identity_of_runs_recorded_before_it():
    from omegaconf import OmegaConf

    from idlora.config import compose
    from idlora.results import run_identity

    cfg = OmegaConf.to_container(compose(["scale=mini", "method=hydralora"]), resolve=True)
    assert cfg["method"]["impl"] == "ours"
    before = {**cfg, "method": {k: v for k, v in cfg["method"].items() if k != "impl"}}
    assert run_identity(cfg) == run_identity(before)
    official = {**cfg, "method": {**cfg["method"], "impl": "official"}}
    assert run_identity(official) != run_identity(before)
