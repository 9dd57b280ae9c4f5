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
