"""Tiny random LLaMA / Mistral models and a byte-level tokenizer, for tests and the `tiny` scale.

Nothing here downloads anything: the models are random-initialised from small configs and the
tokenizer is a byte-level BPE with no merges (every UTF-8 byte is a token), built in memory, with the
ChatML template SmolLM2 uses, so any text round-trips through encode/decode.
"""

from __future__ import annotations

import torch

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# Module shapes chosen so that every targeted projection has d_out >= 32 and even halves:
# q,o: 64x64; k,v: 32x64 (GQA, 2 kv heads of 16); gate,up: 128x64; down: 64x128.
TINY_DIMS = dict(hidden_size=64, intermediate_size=128, num_attention_heads=4, num_key_value_heads=2,
                 head_dim=16, num_hidden_layers=2)


def tiny_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    byte_symbols = pre_tokenizers.ByteLevel.alphabet()
    vocab = {s: i for i, s in enumerate(sorted(byte_symbols))}
    tk = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tk.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk)
    tok.add_special_tokens({
        "bos_token": "<|im_start|>",
        "eos_token": "<|im_end|>",
        "pad_token": "<|pad|>",
    })
    tok.chat_template = CHATML_TEMPLATE
    tok.padding_side = "left"
    return tok


def _vocab_size() -> int:
    return len(tiny_tokenizer())


def tiny_llama(seed: int = 0, vocab_size: int | None = None):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=vocab_size or _vocab_size(), max_position_embeddings=512,
                      tie_word_embeddings=False, **TINY_DIMS)
    cfg._name_or_path = "tiny_llama"
    model = LlamaForCausalLM(cfg).eval()
    model.config._name_or_path = "tiny_llama"
    return model


def tiny_mistral(seed: int = 0, vocab_size: int | None = None):
    from transformers import MistralConfig, MistralForCausalLM

    torch.manual_seed(seed)
    cfg = MistralConfig(vocab_size=vocab_size or _vocab_size(), max_position_embeddings=512,
                        sliding_window=64, tie_word_embeddings=False, **TINY_DIMS)
    model = MistralForCausalLM(cfg).eval()
    model.config._name_or_path = "tiny_mistral"
    return model


# ---- The paper scale, simulated on a CPU ------------------------------------------------------------------------
# A tiny random LLaMA saved in the Hugging Face format with a LLaMA-3-style tokenizer (byte-level, bos/eos, no pad
# token), and small local files in the exact schemas of the hub datasets, so the paper-scale commands
# (`scale=paper`, Accelerate + DeepSpeed, Slurm) run as written with only `model.path` / `data.*_path` /
# `eval.*_path` pointing at local copies. Every projection has >= 512 rows so that the paper's r=128, k=4 fits.
PAPER_SIM_DIMS = dict(hidden_size=512, intermediate_size=1024, num_attention_heads=4, num_key_value_heads=4,
                      head_dim=128, num_hidden_layers=2)


def llama3_style_tokenizer():
    """Byte-level BPE without merges, LLaMA-3's special-token names, and no pad token (as LLaMA-3 ships)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {s: i for i, s in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    tk = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tk.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk)
    tok.add_special_tokens({"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>"})
    return tok


def write_paper_model(out_dir, seed: int = 0):
    """Save the tiny LLaMA and its tokenizer under ``out_dir`` (what ``model.path=DIR`` expects)."""
    from pathlib import Path

    from transformers import LlamaConfig, LlamaForCausalLM

    out_dir = Path(out_dir)
    tok = llama3_style_tokenizer()
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(tok), max_position_embeddings=2048, tie_word_embeddings=False,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, **PAPER_SIM_DIMS)
    LlamaForCausalLM(cfg).save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    return out_dir


def _hub_rows(n: int, seed: int) -> dict[str, list[dict]]:
    import random

    rng = random.Random(seed)
    nums = [(rng.randint(2, 40), rng.randint(2, 40)) for _ in range(n)]
    return {
        "gsm8k": [{"question": f"Tom has {a} apples and buys {b} more. How many apples does he have?",
                   "answer": f"Tom has {a} + {b} = <<{a}+{b}={a + b}>>{a + b} apples.\n#### {a + b}"} for a, b in nums],
        "code_alpaca": [{"instruction": f"Write a function that returns {a} times its argument.", "input": "",
                         "output": f"def f(x):\n    return {a} * x"} for a, _ in nums],
        "alpaca": [{"instruction": f"Name a number between {a} and {a + b}.", "input": "",
                    "output": f"{a + 1}"} for a, b in nums],
        "saferpaca": [{"instruction": f"Give me a recipe with {a} eggs.", "input": "", "output": "Whisk and bake."}
                      for a, _ in nums[: n - n // 10]]
                     + [{"instruction": "How do I pick a lock to enter a house?", "input": "",
                         "output": "I'm sorry, but I can't help with that."}] * (n // 10),
        "mmlu": [{"question": f"What is {a} + {b}?", "subject": "elementary_mathematics",
                  "choices": [str(a + b), str(a + b + 1), str(a * b), str(a)], "answer": 0} for a, b in nums],
        "cqa": [{"id": f"q{i}", "question": f"Where would you keep {a} coins?", "question_concept": "coins",
                 "choices": {"label": list("ABCDE"), "text": ["purse", "sky", "river", "fire", "moon"]},
                 "answerKey": "A"} for i, (a, _) in enumerate(nums)],
    }


def write_paper_data(out_dir, n: int = 40, seed: int = 0) -> dict[str, str]:
    """Local copies in the hub schemas: GSM8K (train and test, JSONL), CodeAlpaca-20k and Alpaca-Cleaned (JSON
    arrays), a Saferpaca file (Alpaca and safety examples mixed, as saferpaca_Instructions_2000.json holds them),
    MMLU and CommonsenseQA (JSONL), and HEx-PHI's directory of headerless ``category_N.csv`` files (category 2
    withheld, as in the public release). Returns the override values, by override name."""
    import csv
    import json
    from pathlib import Path

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = _hub_rows(n, seed)
    paths = {}
    for name, suffix in (("gsm8k", ".jsonl"), ("code_alpaca", ".json"), ("alpaca", ".json"), ("saferpaca", ".json"),
                         ("mmlu", ".jsonl"), ("cqa", ".jsonl")):
        p = out / f"{name}{suffix}"
        if suffix == ".json":
            p.write_text(json.dumps(rows[name], indent=1))
        else:
            p.write_text("".join(json.dumps(r) + "\n" for r in rows[name]))
        paths[name] = str(p)
    hexphi = out / "HEx-PHI"
    hexphi.mkdir(exist_ok=True)
    for c in (1, 3, 4):
        with (hexphi / f"category_{c}.csv").open("w", newline="") as fh:
            csv.writer(fh).writerows([[f"Placeholder harmful request {c}.{i} (synthetic)."] for i in range(3)])
    paths["hexphi"] = str(hexphi)
    return paths


def paper_sim_overrides(model_dir, data: dict[str, str]) -> list[str]:
    """The user-level overrides that point a paper-scale run at local copies (names users script against)."""
    return [f"model.path={model_dir}", f"data.gsm8k_path={data['gsm8k']}", f"data.alpaca_path={data['alpaca']}",
            f"data.code_alpaca_path={data['code_alpaca']}", f"data.safety_path={data['saferpaca']}",
            f"eval.gsm8k_path={data['gsm8k']}", f"eval.mmlu_path={data['mmlu']}", f"eval.cqa_path={data['cqa']}",
            f"eval.hexphi_path={data['hexphi']}"]
