"""Reviewer ablations selection=svd and selection=gaussian: explicit frozen bases A_i (k, r, d_in) instead of
rows of W. The forward against the literal eq. 4 with those A_i, the bases' defining properties, save/load."""

import numpy as np
import pytest
import torch
from peft import PeftModel, get_peft_model
from torch import nn

from idlora import IDLoRAConfig
from idlora import pmrc
from idlora.models.tiny import tiny_llama
from idlora.tuners.idlora.layer import Linear

D_IN, D_OUT, K, R = 12, 16, 3, 4


def literal_with_bases(W, A, B, R_w, rank_boosting, scaling, h):
    """u = W h + scaling * sum_i softmax(R h)_i y_i with x_i = A_i h, one token and one cluster at a time."""
    out = []
    for ht in h:
        xs = [A[i] @ ht for i in range(A.shape[0])]
        alpha = torch.softmax(R_w @ ht, 0)
        total = sum(alpha[i] * (torch.cat([B @ x[: len(x) // 2], B @ x[len(x) // 2:]]) if rank_boosting else B @ x)
                    for i, x in enumerate(xs))
        out.append(W @ ht + scaling * total)
    return torch.stack(out)


@pytest.mark.parametrize("selection", ["svd", "gaussian"])
@pytest.mark.parametrize("rb", [True, False])
def test_forward_with_bases_equals_literal(selection, rb):
    torch.manual_seed(0)
    base = nn.Linear(D_IN, D_OUT, bias=False).double()
    cfg = IDLoRAConfig(r=R, k=K, alpha=8, rank_boosting=rb, selection=selection, target_modules=["x"])
    A = pmrc.select_rows(base.weight, K, R, selection, seed=0, module_name="x")
    assert A.shape == (K, R, D_IN) and A.dtype == torch.float64
    layer = Linear(base, "default", cfg, frozen=A, module_name="x").double().eval()
    assert "default" not in layer.idlora_index and torch.equal(layer.idlora_A["default"], A)
    nn.init.normal_(layer.idlora_B["default"].weight, std=0.5)
    h = torch.randn(5, D_IN, dtype=torch.float64)
    expected = literal_with_bases(base.weight, A, layer.idlora_B["default"].weight,
                                  layer.idlora_router["default"].weight, rb, layer.scaling["default"], h)
    torch.testing.assert_close(layer(h), expected, rtol=1e-10, atol=1e-10)
    with torch.no_grad():
        torch.testing.assert_close(layer(h.reshape(1, 5, D_IN))[0], expected, rtol=1e-10, atol=1e-10)


def test_svd_bases_span_each_blocks_top_singular_directions():
    W = torch.randn(16, 10, dtype=torch.float64)
    A = pmrc.svd_bases(W, k=2, r=3)
    for i, block in enumerate((W[:8], W[8:])):
        _, s, vh = np.linalg.svd(block.numpy())  # independent: numpy's SVD
        np.testing.assert_allclose(np.abs(A[i].numpy()), np.abs(s[:3, None] * vh[:3] * (3 / 8) ** 0.5), atol=1e-10)
        gram = A[i] @ A[i].T  # rows are orthogonal, norms s_j^2 * r / n
        np.testing.assert_allclose(gram.numpy(), np.diag(s[:3] ** 2 * 3 / 8), atol=1e-10)
    with pytest.raises(ValueError, match="exceeds d_in"):
        pmrc.svd_bases(torch.randn(40, 4), k=2, r=6)


def test_gaussian_bases_are_seeded_and_on_ws_scale():
    W = torch.randn(64, 256) * 0.02
    a = pmrc.select_rows(W, 4, 8, "gaussian", seed=3, module_name="m")
    b = pmrc.select_rows(W, 4, 8, "gaussian", seed=3, module_name="m")
    c = pmrc.select_rows(W, 4, 8, "gaussian", seed=4, module_name="m")
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert abs(a.std().item() / W.std().item() - 1) < 0.05


@pytest.mark.parametrize("selection", ["svd", "gaussian"])
def test_bases_travel_with_the_adapter(selection, tmp_path, monkeypatch):
    tokens = torch.randint(3, 250, (1, 9), generator=torch.Generator().manual_seed(0))
    model = get_peft_model(tiny_llama(), IDLoRAConfig(r=4, k=2, alpha=8, selection=selection))
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.normal_(std=0.05)
    model.eval()
    expected = model(tokens).logits
    model.save_pretrained(tmp_path)
    from safetensors.torch import load_file

    saved = load_file(tmp_path / "adapter_model.safetensors")
    assert any(k.endswith("q_proj.idlora_A") for k in saved) and not any("idlora_index" in k for k in saved)
    from peft import PeftConfig

    def recomputed(*args, **kwargs):
        raise AssertionError("bases recomputed on load")

    monkeypatch.setattr(pmrc, f"{selection}_bases", recomputed)  # every loading path takes them from the file
    transformers_model = tiny_llama()
    transformers_model.load_adapter(str(tmp_path))
    for loaded in (PeftModel.from_pretrained(tiny_llama(), tmp_path),
                   PeftModel.from_pretrained(tiny_llama(), tmp_path, config=PeftConfig.from_pretrained(tmp_path)),
                   transformers_model):
        torch.testing.assert_close(loaded.eval()(tokens).logits, expected, rtol=0, atol=0)
