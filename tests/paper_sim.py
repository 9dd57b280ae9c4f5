"""Shared set-up of the paper-scale simulation tests: a tiny HF LLaMA saved to disk and files in the hub datasets'
schemas, the overrides that point a table's runs at them, and fake Slurm commands (sbatch, squeue, scontrol) on PATH."""

from __future__ import annotations

import csv
import json
import os
import random
import stat
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

REPO = Path(__file__).parents[1]

FAKE_SBATCH = """#!/bin/bash
# fake sbatch --parsable SCRIPT: queue a job (state PENDING), print its id
set -e
n=$(( $(cat "$FAKE_SLURM/next" 2>/dev/null || echo 100) + 1 )); echo $n > "$FAKE_SLURM/next"
mkdir -p "$FAKE_SLURM/queue"; echo PENDING > "$FAKE_SLURM/queue/$n"
echo "$n $*" >> "$FAKE_SLURM/sbatch.log"; echo $n
"""
FAKE_SQUEUE = """#!/bin/bash
# fake squeue -h -j ID -o %T: the job's state while it is queued, nothing once it has left the queue
while [ $# -gt 0 ]; do case $1 in -j) id=$2; shift 2;; *) shift;; esac; done
[ -f "$FAKE_SLURM/queue/$id" ] && cat "$FAKE_SLURM/queue/$id"; exit 0
"""
FAKE_SCONTROL = """#!/bin/bash
# fake scontrol requeue ID: recorded, the job queued again
echo "$*" >> "$FAKE_SLURM/scontrol.log"; echo PENDING > "$FAKE_SLURM/queue/$2"
"""


# ---- The paper scale, simulated on a CPU ------------------------------------------------------------------------
# A tiny random LLaMA saved in the Hugging Face format with a LLaMA-3-style tokenizer (byte-level, bos/eos, no pad
# token), and small local files in the exact schemas of the hub datasets, so the paper-scale commands
# (`scale=paper`, Accelerate + DeepSpeed, Slurm) run as written with only `model.path` / `data.*_path` /
# `eval.*_path` pointing at local copies. Every projection has >= 512 rows so that the paper's r=128, k=4 fits.
PAPER_SIM_DIMS = dict(hidden_size=512, intermediate_size=1024, num_attention_heads=4, num_key_value_heads=4,
                      head_dim=128, num_hidden_layers=2)


def llama3_style_tokenizer():
    """Byte-level BPE without merges, LLaMA-3's special-token names, and no pad token (as LLaMA-3 ships)."""
    vocab = {s: i for i, s in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    tk = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tk.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk)
    tok.add_special_tokens({"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>"})
    return tok


def write_paper_model(out_dir, seed: int = 0):
    """Save the tiny LLaMA and its tokenizer under ``out_dir`` (what ``model.path=DIR`` expects)."""
    out_dir = Path(out_dir)
    tok = llama3_style_tokenizer()
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(tok), max_position_embeddings=2048, tie_word_embeddings=False,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, **PAPER_SIM_DIMS)
    LlamaForCausalLM(cfg).save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    return out_dir


def _hub_rows(n: int, seed: int) -> dict[str, list[dict]]:
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


def paper_files(root: Path) -> tuple[Path, dict[str, str]]:
    model = write_paper_model(root / "model")
    return model, write_paper_data(root / "data")


def local_overrides(root: Path, model: Path, data: dict[str, str]) -> list[str]:
    """Local copies for every model and dataset (one list serves every run of a table), and where runs write."""
    return [*(f"local_models.{m}={model}" for m in ("llama3_8b", "mistral_7b", "llama32_3b")),
            f"local_data.gsm8k_train={data['gsm8k']}", f"local_data.gsm8k_test={data['gsm8k']}",
            f"local_data.alpaca={data['alpaca']}", f"local_data.code_alpaca={data['code_alpaca']}",
            f"local_data.saferpaca={data['saferpaca']}", f"local_data.hexphi={data['hexphi']}",
            f"local_data.mmlu={data['mmlu']}", f"local_data.cqa={data['cqa']}",
            f"output_root={root / 'runs'}", f"results_dir={root / 'results'}"]


# The budget of a simulated run: user-level overrides only (none changes what a shipped file says).
SMALL = ["train.max_steps=2", "eval.limit=2", "eval.humaneval_problems=1"]


def fake_slurm(root: Path) -> dict:
    """An environment whose PATH starts with fake sbatch/squeue/scontrol keeping their state under ``root``."""
    bin_dir = root / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name, text in (("sbatch", FAKE_SBATCH), ("squeue", FAKE_SQUEUE), ("scontrol", FAKE_SCONTROL)):
        f = bin_dir / name
        f.write_text(text)
        f.chmod(f.stat().st_mode | stat.S_IEXEC)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_SLURM": str(root)}
