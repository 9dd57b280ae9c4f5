"""Prompt templates and tokenisation with the loss on response tokens only.

Families: ``chatml`` (SmolLM2-Instruct and the tiny test tokenizer: the tokenizer's own chat template) and
``llama3`` / ``mistral`` (the paper fine-tunes *base* models, which have no chat template: both use the
Alpaca prompt, the format of the Alpaca, CodeAlpaca and Saferpaca data). Training and evaluation build their
prompts with the same ``build_prompt``, so a model is evaluated in the format it was trained on.
"""

from __future__ import annotations

import torch

from ..errors import ConfigError

FAMILIES = ("chatml", "llama3", "mistral")
ALPACA_WITH_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"
)
ALPACA_NO_INPUT = (
    "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Response:\n"
)


def build_prompt(instruction: str, input: str, family: str, tokenizer, system: str | None = None) -> str:
    """The text before the response, ending where the model starts writing."""
    if family == "chatml":
        user = instruction if not input else f"{instruction}\n\n{input}"
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    if family in ("llama3", "mistral"):
        body = (ALPACA_WITH_INPUT if input else ALPACA_NO_INPUT).format(instruction=instruction, input=input)
        body = (system + "\n\n" + body) if system else body
        return (tokenizer.bos_token or "") + body  # base LLaMA/Mistral expect BOS; ChatML carries its own markers
    raise ConfigError(f"unknown prompt template family {family!r}; valid: {', '.join(FAMILIES)}")


def tokenize_example(record: dict, tokenizer, family: str, max_length: int) -> dict | None:
    """input_ids / attention_mask / labels (−100 on the prompt). The response is truncated to fit; an example
    whose prompt alone leaves no room for a response token is dropped (None)."""
    # a record may carry its exact prompt: the real multiple-choice tasks train in the cloze form they are scored in
    prompt = record.get("prompt") or build_prompt(record["instruction"], record.get("input", ""), family, tokenizer)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    response_ids = tokenizer(record["output"], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    room = max_length - len(prompt_ids)
    if room < 1:
        return None
    response_ids = response_ids[:room]
    ids = prompt_ids + response_ids
    return {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": [-100] * len(prompt_ids) + response_ids}


class SFTCollator:
    """A list of tokenised examples as model inputs. Padded (``pack=False``): right-padded into one row per example
    (labels padded with −100). Packed (``pack=True``): the examples one after another in a single row, with no
    padding: ``position_ids`` restart at 0 for each example and no attention mask is passed, from which transformers
    builds a block-diagonal causal mask (sdpa/eager) or variable-length attention (flash-attention 2), so no example
    attends to another. Each example's first label is −100 in the row, so no token is trained to predict the next
    example's start; that label is never a target in a padded row either (the loss predicts token t+1 from token
    t), so both forms train the same tokens on the same contexts, and their loss is the same mean over those tokens.
    Call the model with ``use_cache=False`` (transformers skips the packed mask when it builds a cache)."""

    def __init__(self, tokenizer, pack: bool = False):
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.pack = pack

    def __call__(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        return self._packed(examples) if self.pack else self._padded(examples)

    def _padded(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        width = max(len(e["input_ids"]) for e in examples)

        def pad(key, value):
            return torch.tensor([e[key] + [value] * (width - len(e[key])) for e in examples], dtype=torch.long)

        return {"input_ids": pad("input_ids", self.pad_id), "attention_mask": pad("attention_mask", 0),
                "labels": pad("labels", -100)}

    @staticmethod
    def _packed(examples: list[dict]) -> dict[str, torch.Tensor]:
        ids, positions, labels = [], [], []
        for e in examples:
            ids += e["input_ids"]
            positions += range(len(e["input_ids"]))
            labels += [-100] + e["labels"][1:]

        def row(values):
            return torch.tensor([values], dtype=torch.long)

        return {"input_ids": row(ids), "position_ids": row(positions), "labels": row(labels)}


def padding_fraction(lengths: list[int], batches: list[list[int]]) -> float:
    """The share of a padded collation's tokens that are padding, over ``batches`` (index lists into ``lengths``)."""
    real = sum(lengths[i] for b in batches for i in b)
    padded = sum(max(lengths[i] for i in b) * len(b) for b in batches)
    return 1.0 - real / padded if padded else 0.0
