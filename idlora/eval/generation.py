"""Batched generation for the evaluation benchmarks: left padding, greedy or sampled, a progress bar.

Every (prompt, sample) pair is one job. Jobs are sorted by tokenized prompt length (longest first, stable, so
the samples of one prompt stay together) and cut into batches, so a batch pads its prompts only up to similar
lengths; the completions come back in the prompts' order. A sampled batch is seeded from ``(seed, its first
job)``, so its samples do not depend on how long earlier batches ran.

A benchmark may pass ``stop``: a function giving the index at which a completion ends (or None while it has not
ended). It must be prefix-stable (once it returns an index for a text, it returns the same index for every
extension of that text); generation of a row then stops as soon as its text has ended, and every completion is
cut at ``stop``'s index, so scores do not depend on whether a row stopped early or ran on.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Callable

import torch
from tqdm.auto import tqdm
from transformers import StoppingCriteria, StoppingCriteriaList

StopFn = Callable[[str], "int | None"]


def model_device(model) -> torch.device:
    """The device inputs must go to: that of the model's first parameter (its embeddings)."""
    return next(model.parameters()).device


def batch_seed(seed: int, job: tuple[int, int]) -> int:
    """The sampling seed of a batch whose first job is ``job`` = (prompt index, sample index)."""
    digest = hashlib.sha256(f"{seed}:{job[0]}:{job[1]}".encode()).digest()
    return int.from_bytes(digest[:8], "little") % (2 ** 63)


def length_sorted_batches(lengths: list[int], num_samples: int, batch_size: int) -> list[list[tuple[int, int]]]:
    """Batches of (prompt, sample) jobs, longest prompts first; samples of one prompt are adjacent."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])  # stable: equal lengths keep their order
    jobs = [(i, s) for i in order for s in range(num_samples)]
    return [jobs[k:k + batch_size] for k in range(0, len(jobs), batch_size)]


def cut(text: str, stop: StopFn | None) -> str:
    """``text`` up to where ``stop`` says it ends (all of it when it has not ended)."""
    end = stop(text) if stop is not None else None
    return text if end is None else text[:end]


STOP_EVERY = 8  # decode and check the rows every 8 new tokens: at 512 tokens x 32 rows one check costs ~20 ms


class TextStop(StoppingCriteria):
    """Per-row stopping criterion: a row is done once the text it generated has ended by ``stop``, checked
    every ``every`` new tokens (a row runs at most ``every - 1`` tokens past its end; they are cut off)."""

    def __init__(self, tokenizer, prompt_length: int, stop: StopFn, every: int = STOP_EVERY):
        self.tokenizer, self.prompt_length, self.stop, self.every = tokenizer, prompt_length, stop, every
        self.done: torch.Tensor | None = None

    def __call__(self, input_ids: torch.Tensor, scores=None, **kwargs) -> torch.Tensor:
        if self.done is None or self.done.shape[0] != input_ids.shape[0]:
            self.done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        if (input_ids.shape[1] - self.prompt_length) % self.every:
            return self.done.clone()
        rows = (~self.done).nonzero().flatten().tolist()
        texts = self.tokenizer.batch_decode(input_ids[rows, self.prompt_length:], skip_special_tokens=True)
        for row, text in zip(rows, texts):
            if self.stop(text) is not None:
                self.done[row] = True
        return self.done.clone()


@dataclass
class GenerationStats:
    tokens: int = 0          # new tokens generated (padding of finished rows not counted)
    seconds: float = 0.0
    prompt_tokens: int = 0   # real prompt tokens of all rows
    pad_tokens: int = 0      # left padding of all rows

    def as_dict(self) -> dict:
        rate = self.tokens / self.seconds if self.seconds > 0 else None
        return {"tokens": self.tokens, "seconds": round(self.seconds, 6),  # µs: a rounded ms skews a short run's rate
                "tokens_per_s": round(rate, 2) if rate is not None else None,
                "prompt_tokens": self.prompt_tokens, "pad_tokens": self.pad_tokens}


def _generate_kwargs(tokenizer, max_new_tokens: int, temperature: float, pad_id: int) -> dict:
    kwargs = dict(max_new_tokens=max_new_tokens, pad_token_id=pad_id, eos_token_id=tokenizer.eos_token_id,
                  use_cache=True)
    if temperature > 0:
        kwargs.update(do_sample=True, temperature=temperature, top_p=1.0)
    else:
        kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    return kwargs


def _run_batch(model, tokenizer, texts: list[str], kwargs: dict, stop: StopFn | None, stats: GenerationStats,
               stop_every: int):
    enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    width, real = enc["input_ids"].shape[1], int(enc["attention_mask"].sum())
    stats.prompt_tokens += real
    stats.pad_tokens += enc["attention_mask"].numel() - real
    extra = {"stopping_criteria": StoppingCriteriaList([TextStop(tokenizer, width, stop, stop_every)])} if stop else {}
    gen = model.generate(**enc.to(model_device(model)), **kwargs, **extra)
    new = gen[:, width:]
    stats.tokens += int((new != kwargs["pad_token_id"]).sum())
    return [cut(t, stop) for t in tokenizer.batch_decode(new, skip_special_tokens=True)]


@torch.no_grad()
def generate(model, tokenizer, prompts: list[str], max_new_tokens: int, temperature: float = 0.0,
             num_samples: int = 1, batch_size: int = 8, seed: int = 0, desc: str = "generate",
             stop: StopFn | None = None, stats: GenerationStats | None = None,
             stop_every: int = STOP_EVERY) -> list[list[str]]:
    """``num_samples`` completions for each prompt (text after the prompt, special tokens removed, cut at
    ``stop``, checked every ``stop_every`` tokens); ``stats``, if given, accumulates tokens generated, seconds
    and padding."""
    stats = stats if stats is not None else GenerationStats()
    if not prompts:
        return []
    padding_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    kwargs = _generate_kwargs(tokenizer, max_new_tokens, temperature, pad_id)
    lengths = [len(ids) for ids in tokenizer(prompts, add_special_tokens=False)["input_ids"]]
    out: list[list[str | None]] = [[None] * num_samples for _ in prompts]
    start = time.perf_counter()
    try:
        for batch in tqdm(length_sorted_batches(lengths, num_samples, batch_size), desc=desc, unit="batch",
                          leave=False):
            torch.manual_seed(batch_seed(seed, batch[0]))
            texts = _run_batch(model, tokenizer, [prompts[i] for i, _ in batch], kwargs, stop, stats, stop_every)
            for (i, s), text in zip(batch, texts):
                out[i][s] = text
    finally:
        tokenizer.padding_side = padding_side
        stats.seconds += time.perf_counter() - start
    return out
