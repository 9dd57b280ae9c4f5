"""Figure 3's primary panel: the paper's model shapes without the paper's weights (``make bench``, part ``shapes``).

Per-call overhead, not arithmetic, decides the cost of an adapter on SmolLM2 (hidden 576); the paper timed
LLaMA-3-8B (hidden 4096, MLP 14336, 8 KV heads). ``layer_model`` builds that model's decoder layers with random
weights (``configs/hf/<model>/config.json`` with fewer layers and a small vocabulary: the embedding and the LM head
are the same for every method, so they only dilute the ratios), on which every method is timed at the paper's ranks
(``scale=paper``).
"""

from __future__ import annotations

import torch
from transformers import AutoConfig, AutoModelForCausalLM

from ..models.meta import HF_CONFIG_DIR

# The panel's settings: one decoder layer (a forward of 512 tokens costs ~3 s on 2 cores), a 1024-token vocabulary;
# a 512-token prompt forward (batch 1) and batch-1 decoding of 16 tokens after a 16-token prompt.
SETTINGS = {"model": "llama3_8b", "layers": 1, "vocab": 1024, "prompt_batch": 1, "prompt_tokens": 512,
            "decode_prompt_tokens": 16, "decode_tokens": 16}
# quick (tests): the same path on a small LLaMA, in seconds
QUICK = {"layers": 1, "vocab": 128, "prompt_batch": 1, "prompt_tokens": 32, "decode_prompt_tokens": 8,
         "decode_tokens": 4, "hidden_size": 128, "intermediate_size": 256, "num_attention_heads": 4,
         "num_key_value_heads": 2}


def layer_model(settings: dict, seed: int = 0) -> torch.nn.Module:
    """``settings["model"]``'s architecture with ``settings["layers"]`` decoder layers and ``settings["vocab"]``
    tokens, random weights (the config's initializer), float32, in eval mode. Keys of ``settings`` that name config
    fields (``hidden_size``, ...) replace them (quick mode)."""
    config = AutoConfig.from_pretrained(HF_CONFIG_DIR / settings["model"])
    config.num_hidden_layers, config.vocab_size = settings["layers"], settings["vocab"]
    config.bos_token_id, config.eos_token_id, config.pad_token_id = 1, 2, 0
    for key, value in settings.items():
        if hasattr(config, key) and key not in ("model",):
            setattr(config, key, value)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, torch_dtype=torch.float32)
    return model.eval()


def inputs(settings: dict, seed: int = 0) -> tuple[dict, torch.Tensor]:
    """(prompt batch for the forward, decode prompt (1, n)) of random token ids."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, settings["vocab"], (settings["prompt_batch"], settings["prompt_tokens"]), generator=g)
    decode = torch.randint(3, settings["vocab"], (1, settings["decode_prompt_tokens"]), generator=g)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}, decode
