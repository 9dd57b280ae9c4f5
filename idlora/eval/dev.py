"""A cheap dev metric for checkpoint and learning-rate selection: the teacher-forced loss of held-out dev items'
answers (their mean negative log-likelihood per answer token), per task, in one batched pass.

    dev = dev_loss(model, tokenizer, records, family="chatml", max_length=256)
    dev["loss"], dev["per_task"]["gsm8k"]

``records`` are ``{"instruction", "input", "output", "task"}`` (``idlora.data.load_dev_for``), tokenised as training
tokenises them (``tokenize_example``: the same prompt, the loss on the answer only) and packed into rows of at most
``row_tokens`` tokens (``SFTCollator(pack=True)``: no padding, no example sees another), so the pass costs what the
items' tokens cost: seconds on the mini model. It runs in whatever precision the caller computes in (the training loop
calls it inside the run's autocast). ``loss`` is the mean of the tasks' losses, each task weighing the same.
"""

from __future__ import annotations

import time

import torch

from ..data.templates import SFTCollator, tokenize_example
from ..errors import ConfigError

ROW_TOKENS = 2048  # tokens per packed row: the logits of a row (x vocabulary, fp32) are the pass's peak memory


def _rows(examples: list[dict], row_tokens: int) -> list[list[int]]:
    """Indices of ``examples`` grouped, in order, into rows of at most ``row_tokens`` tokens (an example is never split)."""
    rows, current, size = [], [], 0
    for i, e in enumerate(examples):
        n = len(e["input_ids"])
        if current and size + n > row_tokens:
            rows.append(current)
            current, size = [], 0
        current.append(i)
        size += n
    return rows + ([current] if current else [])


def _token_losses(model, batch: dict) -> torch.Tensor:
    """Per-token negative log-likelihood of each label (0 where the label is -100), aligned with the labels."""
    device = next(model.parameters()).device
    logits = model(input_ids=batch["input_ids"].to(device), position_ids=batch["position_ids"].to(device),
                   use_cache=False).logits[0, :-1].float()
    labels = batch["labels"][0, 1:].to(device)
    nll = torch.nn.functional.cross_entropy(logits, labels, ignore_index=-100, reduction="none")
    return torch.cat([nll.new_zeros(1), nll]).cpu()  # position t's label is predicted at t-1


def describe(point: dict) -> str:
    """One line of a dev point for a log: its loss, each task's, and the seconds it took."""
    tasks = ", ".join(f"{t} {v:.4f}" for t, v in point["per_task"].items())
    return f"dev loss {point['loss']:.4f} ({tasks}; {point['seconds']} s)"


@torch.no_grad()
def dev_loss(model, tokenizer, records: list[dict], family: str, max_length: int,
             row_tokens: int = ROW_TOKENS) -> dict:
    """{"loss": mean over tasks, "per_task": {task: loss}, "items", "tokens" (answer tokens), "seconds"}."""
    start = time.perf_counter()
    kept = [(r.get("task", "all"), e) for r in records
            if (e := tokenize_example(r, tokenizer, family, max_length)) is not None]
    if not kept:
        raise ConfigError(f"no dev item fits train.max_length={max_length} (of {len(records)}); raise max_length.")
    tasks, examples = zip(*kept)
    collate, was_training = SFTCollator(tokenizer, pack=True), model.training
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    model.eval()
    try:
        for row in _rows(list(examples), row_tokens):
            batch = collate([examples[i] for i in row])
            nll, labelled = _token_losses(model, batch), batch["labels"][0] != -100
            offset = 0
            for i in row:
                n = len(examples[i]["input_ids"])
                sums[tasks[i]] = sums.get(tasks[i], 0.0) + float(nll[offset:offset + n].sum())
                counts[tasks[i]] = counts.get(tasks[i], 0) + int(labelled[offset:offset + n].sum())
                offset += n
    finally:
        model.train(was_training)
    per_task = {t: sums[t] / counts[t] for t in sorted(sums) if counts[t]}
    return {"loss": sum(per_task.values()) / len(per_task), "per_task": per_task, "items": len(examples),
            "tokens": sum(counts.values()), "seconds": round(time.perf_counter() - start, 3)}
