"""Tiny random LLaMA / Mistral models and a byte-level tokenizer, for the `tiny` scale (and the tests).

Nothing here downloads anything: the models are random-initialised from small configs and the
tokenizer is a byte-level BPE with no merges (every UTF-8 byte is a token), built in memory, with the
ChatML template SmolLM2 uses, so any text round-trips through encode/decode.
"""

from __future__ import annotations

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM, PreTrainedTokenizerFast

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
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=vocab_size or _vocab_size(), max_position_embeddings=512,
                      tie_word_embeddings=False, **TINY_DIMS)
    cfg._name_or_path = "tiny_llama"
    model = LlamaForCausalLM(cfg).eval()
    model.config._name_or_path = "tiny_llama"
    return model


def tiny_mistral(seed: int = 0, vocab_size: int | None = None):
    torch.manual_seed(seed)
    cfg = MistralConfig(vocab_size=vocab_size or _vocab_size(), max_position_embeddings=512,
                        sliding_window=64, tie_word_embeddings=False, **TINY_DIMS)
    model = MistralForCausalLM(cfg).eval()
    model.config._name_or_path = "tiny_mistral"
    return model
