"""Batched generation: length-sorted batches give the same greedy completions in the prompts' order, batches
are seeded from their first job, rows stop independently, completions are cut consistently, stats recorded."""

import pytest
import torch

from idlora.eval.generation import GenerationStats, TextStop, batch_seed, generate, length_sorted_batches, model_device
from idlora.models.tiny import tiny_llama, tiny_tokenizer


@pytest.fixture(scope="module")
def model_tok():
    return tiny_llama(), tiny_tokenizer()


def test_length_sorted_batches_by_hand():
    # prompt lengths 3, 7, 5, 7; two samples each; longest first, ties in prompt order, samples adjacent
    batches = length_sorted_batches([3, 7, 5, 7], num_samples=2, batch_size=3)
    assert batches == [[(1, 0), (1, 1), (3, 0)], [(3, 1), (2, 0), (2, 1)], [(0, 0), (0, 1)]]


def test_sorted_batches_give_the_one_by_one_greedy_completions_in_prompt_order(model_tok):
    model, tok = model_tok
    # lengths 5, 9, 7, 9, 5, 7 (one token per byte): sorted into the equal-length pairs (1,3), (2,5), (0,4)
    prompts = ["abcde", "the quick", "fox jum", "over lazy", "dogs!", "seven c"]
    stats = GenerationStats()
    batched = generate(model, tok, prompts, max_new_tokens=8, batch_size=2, stats=stats)
    alone = [generate(model, tok, [p], max_new_tokens=8, batch_size=1)[0] for p in prompts]
    assert len({c[0] for c in alone}) == len(prompts)  # distinct completions, so the order is really checked
    assert batched == alone
    assert stats.pad_tokens == 0 and stats.prompt_tokens == sum(len(p) for p in prompts)
    # the prompts' own order would have padded (5, 9), (7, 9), (5, 7): 4 + 2 + 2 tokens
    assert stats.tokens == 8 * len(prompts) and stats.seconds > 0


def test_a_sampled_batch_is_seeded_from_its_first_job(model_tok):
    model, tok = model_tok
    prompts = ["abcd", "wxyz"]  # equal lengths: jobs stay in order, one batch per prompt at batch_size=2
    out = generate(model, tok, prompts, max_new_tokens=6, temperature=1.0, num_samples=2, batch_size=2, seed=3)
    assert out == generate(model, tok, prompts, max_new_tokens=6, temperature=1.0, num_samples=2, batch_size=2,
                           seed=3)
    # the second batch, recomputed on its own from the seed of its first job (1, 0)
    torch.manual_seed(batch_seed(3, (1, 0)))
    enc = tok(["wxyz", "wxyz"], return_tensors="pt", add_special_tokens=False)
    gen = model.generate(**enc, max_new_tokens=6, do_sample=True, temperature=1.0, top_p=1.0,
                         pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    assert out[1] == tok.batch_decode(gen[:, 4:], skip_special_tokens=True)
    assert out != generate(model, tok, prompts, max_new_tokens=6, temperature=1.0, num_samples=2, batch_size=2,
                           seed=4)


def test_text_stop_marks_rows_independently():
    tok = tiny_tokenizer()
    stop = lambda t: t.index("\n") if "\n" in t else None  # noqa: E731
    rows = ["P:ab\ncd", "P:abcde", "P:a\nbcd"]
    ids = torch.tensor([tok(r, add_special_tokens=False)["input_ids"] for r in rows])
    crit = TextStop(tok, prompt_length=2, stop=stop, every=1)
    seen = [crit(ids[:, :n]).tolist() for n in range(3, 8)]
    assert seen == [[False, False, False], [False, False, True], [True, False, True], [True, False, True],
                    [True, False, True]]
    crit = TextStop(tok, prompt_length=2, stop=stop, every=3)  # checked after 3 and 6 new tokens only
    seen = [crit(ids[:, :n]).tolist() for n in range(3, 9)]  # 1 ... 6 new tokens
    assert seen == [[False, False, False]] * 2 + [[True, False, True]] * 4


def test_a_stopped_row_ends_early_and_the_others_run_on(model_tok):
    model, tok = model_tok
    prompts = ["abcdef", "uvwxyz"]
    ids = tok(prompts, return_tensors="pt", add_special_tokens=False)
    full = model.generate(**ids, max_new_tokens=12, do_sample=False, pad_token_id=tok.pad_token_id)[:, 6:]
    texts = tok.batch_decode(full, skip_special_tokens=True)
    # a prefix of row 0's completion that decodes cleanly (one token per byte; skip partial UTF-8)
    k = next(k for k in range(3, 12) if texts[0].startswith(tok.decode(full[0, :k])))
    head = tok.decode(full[0, :k])
    assert not texts[1].startswith(head)
    stop = lambda t: len(head) if t.startswith(head) else None  # noqa: E731
    for every in (1, 4):
        stats = GenerationStats()
        out = generate(model, tok, prompts, max_new_tokens=12, batch_size=2, stop=stop, stats=stats, stop_every=every)
        assert out == [[head], [texts[1]]]  # cut at the same place however late the end was noticed
        # row 0 stopped at the first check after k tokens, row 1 ran to max_new_tokens
        assert stats.tokens == -(-k // every) * every + 12


class _RecordingModel(torch.nn.Module):
    """Parameters on the meta device; records where the input ids were sent, answers "AA" on the CPU."""

    def __init__(self, tok):
        super().__init__()
        self.w = torch.nn.Parameter(torch.empty(1, device="meta"))
        self.a, self.devices = tok("A", add_special_tokens=False)["input_ids"][0], []

    def generate(self, input_ids, attention_mask, max_new_tokens, **kwargs):
        self.devices.append(input_ids.device.type)
        return torch.cat([torch.zeros(input_ids.shape, dtype=torch.long),
                          torch.full((input_ids.shape[0], max_new_tokens), self.a)], 1)


def test_inputs_go_to_the_models_device():
    tok = tiny_tokenizer()
    model = _RecordingModel(tok)
    assert model_device(model).type == "meta"
    assert generate(model, tok, ["ab", "cde"], max_new_tokens=2) == [["AA"], ["AA"]]
    assert model.devices == ["meta"]


def test_a_benchmark_records_its_generation_stats_in_the_results_file(model_tok, tmp_path):
    from idlora.eval.gsm8k import GSM8K
    from idlora.results import new_run_record, update_metrics, write_run_record

    model, tok = model_tok
    bench = GSM8K()
    eval_cfg = {"source": "synthetic", "limit": 3, "batch_size": 2, "max_new_tokens": 5}
    metrics, per_example = bench.evaluate(model, tok, eval_cfg, family="chatml", seed=0)
    gen = bench.info["generation"]
    assert gen["tokens"] == 15  # 3 prompts x 5 tokens: the random model writes no EOS and no final answer
    assert gen["tokens_per_s"] == pytest.approx(gen["tokens"] / gen["seconds"], rel=0.01)
    assert gen["pad_tokens"] > 0 and gen["prompt_tokens"] > 0
    path = tmp_path / "run.json"
    write_run_record(path, new_run_record("r", "e", "tiny", "m", "lora", {}, 1, 2))
    record = update_metrics(path, "gsm8k", metrics, per_example, 1.0, info=bench.info)
    assert record["benchmarks"]["gsm8k"]["generation"] == gen
    assert set(record["metrics"]) == {"gsm8k"}  # not a metric column
    with pytest.raises(ValueError, match="entry's own keys"):
        update_metrics(path, "gsm8k", metrics, per_example, 1.0, info={"seconds": 3})
