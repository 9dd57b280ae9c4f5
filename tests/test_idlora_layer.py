"""ID-LoRA's fast forward against the literal formula of eq. 4, computed cluster by cluster, token by token."""

import itertools

import pytest
import torch
from torch import nn

from idlora import IDLoRAConfig
from idlora.tuners.idlora.layer import Linear

D_IN, D_OUT, K, R = 12, 16, 3, 4


def literal_eq4(W, bias, index, B, router_w, router_kind, rank_boosting, scaling, h, drop_input=None, drop_rows=None):
    """u = W h (+ b) + scaling * sum_i alpha_i y_i, one token and one cluster at a time (no identities used)."""
    out = torch.empty(h.shape[0], W.shape[0], dtype=torch.float64)
    for t in range(h.shape[0]):
        ht = h[t]
        hd = drop_input[t] if drop_input is not None else ht
        xs = [W[index[i]] @ hd for i in range(index.shape[0])]  # x_i = A_i h, A_i = W[S_i, :]
        if drop_rows is not None:
            xs = list(drop_rows[t].reshape(index.shape))
        if router_kind == "linear":
            logits = torch.stack([router_w[i] @ ht for i in range(index.shape[0])])  # R h
        else:
            logits = torch.stack([router_w[0] @ x for x in xs])  # T . x_i
        alpha = torch.softmax(logits, 0)
        total = torch.zeros(W.shape[0], dtype=torch.float64)
        for i, x in enumerate(xs):
            if rank_boosting:
                half = x.shape[0] // 2
                y = torch.cat([B @ x[:half], B @ x[half:]])  # fc([B x^1, B x^2])
            else:
                y = B @ x
            total += alpha[i] * y
        base = W @ ht + (bias if bias is not None else 0)
        out[t] = base + scaling * total
    return out


def make_layer(rank_boosting, router, dropout_position, bias, dropout=0.0, seed=0):
    torch.manual_seed(seed)
    base = nn.Linear(D_IN, D_OUT, bias=bias).double()
    cfg = IDLoRAConfig(r=R, k=K, alpha=8, dropout=dropout, rank_boosting=rank_boosting, router=router,
                       dropout_position=dropout_position, target_modules=["x"])
    index = torch.randperm(D_OUT)[: K * R].reshape(K, R)
    layer = Linear(base, "default", cfg, frozen=index, module_name="x").double()
    for p in (layer.idlora_B["default"].weight, layer.idlora_router["default"].weight):
        nn.init.normal_(p, std=0.5)  # B is zero at init; give it values so the test sees the update
    return layer


CASES = list(itertools.product([True, False], ["linear", "inner"], ["input", "rows"], [False, True]))


@pytest.mark.parametrize("rb,router,position,bias", CASES)
def test_eval_forward_equals_literal_formula(rb, router, position, bias):
    layer = make_layer(rb, router, position, bias, dropout=0.3).eval()
    h = torch.randn(5, D_IN, dtype=torch.float64)
    base = layer.get_base_layer()
    expected = literal_eq4(base.weight, base.bias, layer.idlora_index["default"], layer.idlora_B["default"].weight,
                           layer.idlora_router["default"].weight, router, rb, layer.scaling["default"], h)
    torch.testing.assert_close(layer(h), expected, rtol=1e-10, atol=1e-10)
    # batched (B, T, d_in) input gives the same per token
    torch.testing.assert_close(layer(h.reshape(1, 5, D_IN))[0], expected, rtol=1e-10, atol=1e-10)
    with torch.no_grad():  # the inference path accumulates B's product into the base output in place
        torch.testing.assert_close(layer(h.reshape(1, 5, D_IN))[0], expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("rb,router,bias", list(itertools.product([True, False], ["linear", "inner"], [False, True])))
def test_float32_inference_path_is_the_general_path_bit_for_bit(rb, router, bias, monkeypatch):
    """The inference shortcut (float32, one adapter, linear router, no bias, no autograd) runs the general path's
    ops without its Python: the same bits, and the literal formula to float32 precision. Other cases decline it."""
    layer = make_layer(rb, router, "input", bias, dropout=0.3).float().eval()
    h = torch.randn(2, 5, D_IN)
    base = layer.get_base_layer()
    expected = literal_eq4(base.weight.double(), None if base.bias is None else base.bias.double(),
                           layer.idlora_index["default"], layer.idlora_B["default"].weight.double(),
                           layer.idlora_router["default"].weight.double(), router, rb, layer.scaling["default"],
                           h.reshape(10, D_IN).double()).reshape(2, 5, D_OUT)
    taken = []
    shortcut = type(layer)._inference_update

    def spy(self, *args):
        out = shortcut(self, *args)
        taken.append(out is not None)
        return out

    monkeypatch.setattr(type(layer), "_inference_update", spy)
    with torch.no_grad():
        fast = layer(h)
    assert taken == [router == "linear" and not bias]
    monkeypatch.setattr(type(layer), "_inference_update", lambda self, *args: None)
    with torch.no_grad():
        general = layer(h)
    assert torch.equal(fast, general)
    torch.testing.assert_close(fast.double(), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("rb,router", list(itertools.product([True, False], ["linear", "inner"])))
def test_training_input_dropout_equals_literal_formula(rb, router):
    layer = make_layer(rb, router, "input", bias=True, dropout=0.3).train()
    h = torch.randn(6, D_IN, dtype=torch.float64)
    torch.manual_seed(123)
    got = layer(h)
    torch.manual_seed(123)
    dropped = nn.functional.dropout(h, 0.3, training=True)  # the same mask, drawn first in the layer too
    base = layer.get_base_layer()
    expected = literal_eq4(base.weight, base.bias, layer.idlora_index["default"], layer.idlora_B["default"].weight,
                           layer.idlora_router["default"].weight, router, rb, layer.scaling["default"], h,
                           drop_input=dropped)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("rb,router", list(itertools.product([True, False], ["linear", "inner"])))
def test_training_row_dropout_equals_literal_formula(rb, router):
    layer = make_layer(rb, router, "rows", bias=True, dropout=0.3).train()
    h = torch.randn(6, D_IN, dtype=torch.float64)
    base = layer.get_base_layer()
    index = layer.idlora_index["default"]
    x = torch.stack([torch.cat([base.weight[index[i]] @ h[t] for i in range(K)]) for t in range(6)])  # (T, k*r)
    torch.manual_seed(7)
    got = layer(h)
    torch.manual_seed(7)
    x_dropped = nn.functional.dropout(x, 0.3, training=True)
    expected = literal_eq4(base.weight, base.bias, index, layer.idlora_B["default"].weight,
                           layer.idlora_router["default"].weight, router, rb, layer.scaling["default"], h,
                           drop_rows=x_dropped)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)


def test_tensor_names_and_shapes_follow_the_contract():
    layer = make_layer(True, "linear", "input", bias=False)
    assert isinstance(layer.base_layer, nn.Linear)
    assert layer.idlora_index["default"].dtype == torch.long and tuple(layer.idlora_index["default"].shape) == (K, R)
    B, router = layer.idlora_B["default"], layer.idlora_router["default"]
    assert (B.in_features, B.out_features, B.bias) == (R // 2, D_OUT // 2, None)
    assert (router.in_features, router.out_features, router.bias) == (D_IN, K, None)
    assert layer.scaling["default"] == 8 / R
    no_rb = make_layer(False, "linear", "input", bias=False).idlora_B["default"]
    assert (no_rb.in_features, no_rb.out_features) == (R, D_OUT)
    assert "idlora_index.default" in dict(layer.named_buffers())


def test_zero_init_B_means_no_update():
    torch.manual_seed(0)
    base = nn.Linear(D_IN, D_OUT)
    layer = Linear(base, "default", IDLoRAConfig(r=R, k=K, target_modules=["x"]),
                   frozen=torch.arange(K * R).reshape(K, R))
    h = torch.randn(4, D_IN)
    torch.testing.assert_close(layer(h), base(h))
