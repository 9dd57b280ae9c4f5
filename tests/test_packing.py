"""Packed training batches (idlora.data.templates.SFTCollator(pack=True)): one row per micro-batch, no padding, and
the same loss and gradients as padded rows, on the tiny LLaMA and Mistral (whose attention builds the block-diagonal
mask from the restarting position ids)."""

import pytest
import torch

from idlora.data.templates import SFTCollator, padding_fraction
from idlora.methods import apply_method
from idlora.models.tiny import tiny_llama, tiny_mistral, tiny_tokenizer


def _examples(lengths, prompt=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for n in lengths:
        ids = torch.randint(5, 200, (n,), generator=g).tolist()
        out.append({"input_ids": ids, "attention_mask": [1] * n, "labels": [-100] * prompt + ids[prompt:]})
    return out


def test_a_packed_row_holds_every_token_once_with_restarting_positions():
    examples = _examples([5, 9, 4])
    batch = SFTCollator(tiny_tokenizer(), pack=True)(examples)
    assert set(batch) == {"input_ids", "position_ids", "labels"}  # no attention mask: none is padding
    assert batch["input_ids"].tolist() == [sum((e["input_ids"] for e in examples), [])]
    assert batch["position_ids"].tolist() == [list(range(5)) + list(range(9)) + list(range(4))]
    assert batch["labels"].tolist() == [sum((e["labels"] for e in examples), [])]  # prompts of 3: first labels -100
    # an example whose first token is labelled: unlabelled in the row (it would be the previous example's target)
    odd = [{"input_ids": [7, 8], "attention_mask": [1, 1], "labels": [7, 8]}] * 2
    assert SFTCollator(tiny_tokenizer(), pack=True)(odd)["labels"].tolist() == [[-100, 8, -100, 8]]


def test_padding_fraction():
    assert padding_fraction([2, 4, 4, 1], [[0, 1], [2, 3]]) == pytest.approx(1 - 11 / 16)
    assert padding_fraction([3, 3], [[0, 1]]) == 0.0


@pytest.mark.parametrize("build", [tiny_llama, tiny_mistral])
@pytest.mark.parametrize("method", ["lora", "idlora"])
def test_packed_and_padded_rows_give_the_same_loss_and_gradients(build, method):
    torch.manual_seed(0)
    cfg = {"name": method, "r": 8 if method == "idlora" else 2, "alpha": 16, "dropout": 0.0}
    model = apply_method(build(seed=0), cfg)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.normal_(0, 0.05)  # non-zero B: the adapter's path counts
    examples = _examples([7, 19, 12, 3])
    results = []
    for pack in (False, True):
        model.zero_grad()
        loss = model(**SFTCollator(tiny_tokenizer(), pack=pack)(examples), use_cache=False).loss
        loss.backward()
        results.append((loss.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}))
    (padded, g_padded), (packed, g_packed) = results
    assert packed == pytest.approx(padded, rel=1e-5)
    for name in g_padded:
        torch.testing.assert_close(g_packed[name], g_padded[name], rtol=1e-4, atol=1e-6)
