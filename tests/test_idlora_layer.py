"""ID-LoRA's fast forward against the literal formula of eq. 4, computed cluster by cluster, token by token."""

import itertools

import pytest
import torch
from torch import nn

from idlora import IDLoRAConfig
from idlora.tuners.idlora import layer as layer_mod
from idlora.tuners.idlora.layer import Linear

D_IN, D_OUT, K, R = 12, 16, 3, 4


def literal_eq4(W, bias, index, B, router_w, router_kind, rank_boosting, scaling, h, drop_input=None, drop_rows=None,
                parts=None):
    """u = W h (+ b) + scaling * sum_i alpha_i y_i, one token and one cluster at a time (no identities used).

    Routers: linear alpha = softmax(R h); inner alpha = softmax_i(T . x_i); text alpha_i = T . x_i (no softmax);
    uniform alpha_i = 1/k. Rank Boosting with m parts (``parts``; default 2 with RB, 1 without):
    y_i = [B x_i^1 ; ... ; B x_i^m], the x_i^j consecutive pieces of r/m entries."""
    m = parts or (2 if rank_boosting else 1)
    k = index.shape[0]
    out = torch.empty(h.shape[0], W.shape[0], dtype=torch.float64)
    for t in range(h.shape[0]):
        ht = h[t]
        hd = drop_input[t] if drop_input is not None else ht
        xs = [W[index[i]] @ hd for i in range(k)]  # x_i = A_i h, A_i = W[S_i, :]
        if drop_rows is not None:
            xs = list(drop_rows[t].reshape(index.shape))
        if router_kind == "uniform":
            alpha = torch.full((k,), 1.0 / k, dtype=torch.float64)
        elif router_kind == "linear":
            alpha = torch.softmax(torch.stack([router_w[i] @ ht for i in range(k)]), 0)  # softmax(R h)
        else:
            scores = torch.stack([router_w[0] @ x for x in xs])  # T . x_i
            alpha = scores if router_kind == "text" else torch.softmax(scores, 0)
        total = torch.zeros(W.shape[0], dtype=torch.float64)
        for i, x in enumerate(xs):
            piece = x.shape[0] // m
            y = torch.cat([B @ x[j * piece:(j + 1) * piece] for j in range(m)])  # fc([B x^1, ..., B x^m])
            total += alpha[i] * y
        base = W @ ht + (bias if bias is not None else 0)
        out[t] = base + scaling * total
    return out


def make_layer(rank_boosting, router, dropout_position, bias, dropout=0.0, seed=0, rb_parts=2):
    torch.manual_seed(seed)
    base = nn.Linear(D_IN, D_OUT, bias=bias).double()
    cfg = IDLoRAConfig(r=R, k=K, alpha=8, dropout=dropout, rank_boosting=rank_boosting, router=router,
                       dropout_position=dropout_position, target_modules=["x"], rb_parts=rb_parts)
    index = torch.randperm(D_OUT)[: K * R].reshape(K, R)
    layer = Linear(base, "default", cfg, frozen=index, module_name="x").double()
    for p in (layer.idlora_B["default"].weight, *router_weight(layer, "default", tensor=False)):
        nn.init.normal_(p, std=0.5)  # B is zero at init; give it values so the test sees the update
    return layer


def router_weight(layer, name="default", tensor=True):
    """The router's weight (None for router=uniform, which has none); ``tensor=False``: a list of 0 or 1."""
    w = layer.idlora_router[name].weight if name in layer.idlora_router else None
    return w if tensor else [w] if w is not None else []


CASES = list(itertools.product([True, False], ["linear", "inner"], ["input", "rows"], [False, True]))


@pytest.mark.parametrize("rb,router,position,bias", CASES)
def test_eval_forward_equals_literal_formula(rb, router, position, bias):
    layer = make_layer(rb, router, position, bias, dropout=0.3).eval()
    h = torch.randn(5, D_IN, dtype=torch.float64)
    base = layer.get_base_layer()
    expected = literal_eq4(base.weight, base.bias, layer.idlora_index["default"], layer.idlora_B["default"].weight,
                           router_weight(layer), router, rb, layer.scaling["default"], h)
    torch.testing.assert_close(layer(h), expected, rtol=1e-10, atol=1e-10)
    # batched (B, T, d_in) input gives the same per token
    torch.testing.assert_close(layer(h.reshape(1, 5, D_IN))[0], expected, rtol=1e-10, atol=1e-10)
    with torch.no_grad():  # the inference path accumulates B's product into the base output in place
        torch.testing.assert_close(layer(h.reshape(1, 5, D_IN))[0], expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("rb,router,bias,shape", list(itertools.product(
    [True, False], ["linear", "inner"], [False, True], [(2, 5), (1, 1), (1, 3)])))
def test_float32_inference_path_is_the_general_path_bit_for_bit(rb, router, bias, shape, monkeypatch):
    """The inference shortcut (float32, one adapter, linear router, no bias, no autograd) runs the general path's
    ops without its Python: the same bits, and the literal formula to float32 precision. Other cases decline it.
    Shapes: a prompt (10 tokens: the broadcast mix) and decoding steps (1 and 3 tokens: the bmm mix)."""
    layer = make_layer(rb, router, "input", bias, dropout=0.3).float().eval()
    h = torch.randn(*shape, D_IN)
    base = layer.get_base_layer()
    expected = literal_eq4(base.weight.double(), None if base.bias is None else base.bias.double(),
                           layer.idlora_index["default"], layer.idlora_B["default"].weight.double(),
                           router_weight(layer).double(), router, rb, layer.scaling["default"],
                           h.reshape(-1, D_IN).double()).reshape(*shape, D_OUT)
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
                           router_weight(layer), router, rb, layer.scaling["default"], h,
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
                           router_weight(layer), router, rb, layer.scaling["default"], h,
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


ROUTERS = ["linear", "inner", "text", "uniform"]
PART_CASES = [(True, 2), (False, 2), (True, 4)]  # (rank_boosting, rb_parts): eq. 4, w/o RB (m = 1), m = 4


@pytest.mark.parametrize("router,rb_m,position", list(itertools.product(ROUTERS, PART_CASES, ["input", "rows"])))
def test_every_router_and_rb_factor_equals_literal_formula(router, rb_m, position):
    """text (alpha_i = T . x_i, no softmax), uniform (1/k) and m parts, in eval mode and training with dropout."""
    rb, m = rb_m
    layer = make_layer(rb, router, position, bias=True, dropout=0.3, rb_parts=m).eval()
    h = torch.randn(5, D_IN, dtype=torch.float64)
    base, index = layer.get_base_layer(), layer.idlora_index["default"]
    args = (base.weight, base.bias, index, layer.idlora_B["default"].weight, router_weight(layer), router, rb,
            layer.scaling["default"], h)
    parts = m if rb else 1
    torch.testing.assert_close(layer(h), literal_eq4(*args, parts=parts), rtol=1e-10, atol=1e-10)
    with torch.no_grad():
        torch.testing.assert_close(layer(h.reshape(1, 5, D_IN))[0], literal_eq4(*args, parts=parts), rtol=1e-10,
                                   atol=1e-10)
    layer.train()
    torch.manual_seed(3)
    got = layer(h)
    torch.manual_seed(3)
    if position == "input":
        expected = literal_eq4(*args, drop_input=nn.functional.dropout(h, 0.3, training=True), parts=parts)
    else:
        x = torch.stack([torch.cat([base.weight[index[i]] @ h[t] for i in range(K)]) for t in range(5)])
        expected = literal_eq4(*args, drop_rows=nn.functional.dropout(x, 0.3, training=True), parts=parts)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)


def test_text_router_is_inner_without_its_softmax():
    """The same T gives alpha = T . x_i (text) and softmax_i(T . x_i) (inner): text's weights need not sum to 1."""
    text, inner = make_layer(True, "text", "input", False), make_layer(True, "inner", "input", False)
    assert torch.equal(router_weight(text), router_weight(inner))  # same seed, same shapes: the same init
    h = torch.randn(7, D_IN, dtype=torch.float64)
    x = text.frozen_projections("default", h, text.get_base_layer()(h))  # (7, k, r)
    scores = torch.einsum("tkr,r->tk", x, router_weight(text)[0])
    torch.testing.assert_close(text.route("default", h, x), scores, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(inner.route("default", h, x), torch.softmax(scores, -1), rtol=1e-12, atol=1e-12)
    assert not torch.allclose(scores.sum(-1), torch.ones(7, dtype=torch.float64))


def test_uniform_router_has_no_parameters_and_text_has_r():
    uniform = make_layer(True, "uniform", "input", False)
    assert "default" not in uniform.idlora_router
    assert [n for n, _ in uniform.named_parameters() if "idlora" in n] == ["idlora_B.default.weight"]
    text = make_layer(True, "text", "input", False).idlora_router["default"]
    assert (text.in_features, text.out_features, text.bias) == (R, 1, None)


def test_rb_factor_shapes_and_bad_values():
    B = make_layer(True, "linear", "input", False, rb_parts=4).idlora_B["default"]
    assert (B.in_features, B.out_features) == (R // 4, D_OUT // 4)  # (d_out/m, r/m) as nn.Linear stores it
    for kwargs, match in [({"rb_parts": 3}, "rb_parts=3 .*r must be divisible by 3; got r=4. Use method.r=6"),
                          ({"rb_parts": 1}, "rb_parts=1 .* set method.rank_boosting=false"),
                          ({"rb_parts": 0}, "integer >= 2"),
                          ({"rb_parts": 4, "rank_boosting": False}, "rank_boosting=false is m = 1 part")]:
        with pytest.raises(ValueError, match=match):
            IDLoRAConfig(r=4, k=2, **kwargs)


@pytest.mark.parametrize("n", [1, layer_mod.FEW_TOKENS, layer_mod.FEW_TOKENS + 1, 50])
def test_mix_bases_is_the_weighted_sum_on_both_sides_of_the_token_threshold(n):
    """sum_i alpha_i x_i by bmm (few tokens) or by a broadcast (more): the same values and gradients as einsum."""
    alpha = torch.rand(n, 1, K, dtype=torch.float64, requires_grad=True)
    x = torch.randn(n, K, R, dtype=torch.float64, requires_grad=True)
    got = layer_mod.mix_bases(alpha, x).reshape(n, R)
    expected = torch.einsum("nk,nkr->nr", alpha[:, 0], x)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    g = torch.randn(n, R, dtype=torch.float64)
    got_grads = torch.autograd.grad(got, (alpha, x), g)
    expected_grads = torch.autograd.grad(expected, (alpha, x), g)
    for a, b in zip(got_grads, expected_grads):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("rb,rb_parts", [(True, 2), (True, 4), (False, 2)])
@pytest.mark.parametrize("shape", [(1, D_IN), (1, 1, D_IN)])
def test_compiled_one_token_update_equals_literal_formula(rb, rb_parts, shape):
    """The one-token path torch.compile takes (router and B as broadcast sums, not GEMMs), called directly."""
    layer = make_layer(rb, "linear", "input", False, rb_parts=rb_parts).eval()
    base = layer.get_base_layer()
    h = torch.randn(*shape, dtype=torch.float64)
    index, B = layer.idlora_index["default"], layer.idlora_B["default"].weight
    got = layer_mod.compiled_one_token_update(h, base(h), index, router_weight(layer), B, layer.scaling["default"])
    expected = literal_eq4(base.weight, None, index, B, router_weight(layer), "linear", rb, layer.scaling["default"],
                           h.reshape(1, D_IN), parts=rb_parts if rb else 1)
    assert got.shape == base(h).shape
    torch.testing.assert_close(got.reshape(1, D_OUT), expected, rtol=1e-10, atol=1e-10)
