"""The memory plan (idlora/bench/memory_plan.py): its estimator against hand counts, and configs/scale/paper.yaml against
the plan it computes (so the shipped per-method switches cannot drift from it)."""

import json

import pytest

from idlora.bench import memory_plan as mp
from idlora.config import load_group
from idlora.errors import ConfigError

TINY = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64, "intermediate_size": 160,
        "num_attention_heads": 4, "num_key_value_heads": 2, "num_hidden_layers": 2, "vocab_size": 256,
        "hidden_act": "silu", "rms_norm_eps": 1e-5, "tie_word_embeddings": False, "max_position_embeddings": 512}


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf")
    (root / "tiny").mkdir()
    (root / "tiny" / "config.json").write_text(json.dumps(TINY))
    return root


def test_model_states_are_deepspeeds_formulas():
    c = mp.Counts(trainable=1000, frozen=5000, buffer_bytes=16, largest_layer=300)
    # ZeRO-2: 2 P_f (frozen bf16) + 2 P_t + 18 P_t / G; offloaded: 2 P_f + 2 P_t, CPU P_t max(4G, 16) 1.5
    assert mp.model_states_bytes(c, 2, gpus=2, offload=False) == (10000 + 2000 + 9000 + 16, 1000 * 4 * 2 * 1.5)
    assert mp.model_states_bytes(c, 2, gpus=2, offload=True) == (10000 + 2000 + 16, 1000 * 16 * 1.5)
    # ZeRO-3: 2 P_f / G + 4 L + 18 P_t / G; offloaded: 2 P_f / G + 4 L + 2 P_t / G, CPU P_t 16 1.5
    assert mp.model_states_bytes(c, 3, gpus=2, offload=False)[0] == 5000 + 1200 + 9000 + 16
    assert mp.model_states_bytes(c, 3, gpus=2, offload=True) == (5000 + 1200 + 1000 + 16, 1000 * 16 * 1.5)
    with pytest.raises(ConfigError, match="use 2 or 3"):
        mp.model_states_bytes(c, 1, gpus=2, offload=False)


def test_tiny_layer_and_head_bytes_match_the_hand_count(tiny_dir):
    h, f, heads, V = 64, 160, 4, 256
    fft = mp.profile("tiny", {"name": "fft"}, config_dir=tiny_dir)
    # per RMSNorm: fp32 input, fp32 rsqrt, bf16 normalised (weight grad), projections' input; q, k, v (repeated to
    # every head), output and fp32 lse of attention; gate, SiLU, up and down inputs of the MLP
    assert fft.layer_per_token == 2 * (4 * h + 4 + 2 * h + 2 * h) + 4 * 2 * h + 4 * heads + 8 * f
    assert fft.layer_fixed == 0
    # bf16 logits, fp32 copy, fp32 log-softmax; final norm (fp32 in, rsqrt, normalised), lm_head input, int64 labels
    assert fft.head_per_token == 10 * V + (4 * h + 4 + 2 * h) + 2 * h + 8
    r = 4
    lora = mp.profile("tiny", {"name": "lora", "r": r, "alpha": 8, "dropout": 0.05}, config_dir=tiny_dir)
    # frozen base: norms keep fp32 input and rsqrt only; each of 7 modules: bool dropout mask + bf16 dropped input
    # (1 + 2 bytes per d_in) + A's output; the MLP keeps SiLU's input, its output and up's output
    per_module = 6 * (3 * h + 2 * r) + (3 * f + 2 * r)
    assert lora.layer_per_token == 2 * (4 * h + 4) + 4 * 2 * h + 4 * heads + 6 * f + per_module
    assert lora.head_per_token == 10 * V + (4 * h + 4) + 8
    per_layer = 2 * h * h + 2 * h * 32 + 3 * h * f + 2 * h  # q, o; k, v (2 kv heads x 16); gate, up, down; norms
    assert (fft.counts.trainable, fft.counts.frozen) == (2 * V * h + 2 * per_layer + h, 0)
    # LoRA: r (d_in + d_out) per module: q, k, v, o, gate, up, down
    assert lora.counts.trainable == 2 * r * (128 + 96 + 96 + 128 + 3 * (h + f))


def test_activation_bytes_with_and_without_checkpointing():
    p = mp.Profile(mp.Counts(1, 1, 0, 1), layer_per_token=100, layer_fixed=10, head_per_token=50, n_layers=3,
                   hidden=4)
    assert mp.activation_bytes(p, 8, checkpointing=False) == 3 * (100 * 8 + 10) + 50 * 8
    # every layer's bf16 input, one layer recomputed, the head
    assert mp.activation_bytes(p, 8, checkpointing=True) == 3 * 2 * 4 * 8 + (100 * 8 + 10) + 50 * 8


def test_the_ladder_takes_the_cheapest_setting_that_fits():
    p = mp.Profile(mp.Counts(trainable=10**9, frozen=0, buffer_bytes=0, largest_layer=10**8),
                   layer_per_token=10**5, layer_fixed=0, head_per_token=10**5, n_layers=32, hidden=4096)
    roomy = mp.plan_one(p, "fft", gpus=2, budget=1000 * mp.GIB, tokens=4096)["chosen"]
    assert (roomy["gradient_checkpointing"], roomy["optimizer_offload"]) == (False, False)
    totals = [r["total_gib"] for r in mp.plan_one(p, "fft", 2, 1000 * mp.GIB, 4096)["settings"]]
    assert totals == sorted(totals, reverse=True)
    tight = mp.plan_one(p, "fft", 2, (totals[1] + 0.01) * mp.GIB, 4096)["chosen"]
    assert (tight["gradient_checkpointing"], tight["optimizer_offload"]) == (True, False)
    assert mp.plan_one(p, "fft", 2, (totals[2] - 0.01) * mp.GIB, 4096)["chosen"] is None
    with pytest.raises(ConfigError, match="gpus >= 1"):
        mp.build_plan(models=(), gpus=0)


@pytest.fixture(scope="module")
def paper_plan():
    return mp.build_plan()


def test_paper_yaml_switches_agree_with_the_plan(paper_plan):
    scale = load_group("scale", "paper")
    for key in ("gradient_checkpointing", "optimizer_offload"):
        for method in mp.METHOD_ORDER:
            needed = any(plan[method]["chosen"][key] for plan in paper_plan["models"].values())
            assert mp.resolve_switch(scale[key], method) == needed, (key, method)
    assert all(x["chosen"] is not None for plan in paper_plan["models"].values() for x in plan.values())


def test_llama3_8b_full_fine_tuning_agrees_with_the_independent_estimate(paper_plan):
    x = paper_plan["models"]["llama3_8b"]["fft"]
    none, ckpt, offload = x["settings"]
    P = x["trainable"]
    # weights + grads + Adam: 16 bytes/param/2 GPUs by hand (~60 GiB); DeepSpeed counts 18 plus the gathered layer
    assert 16 * P / 2 / mp.GIB < none["model_states_gib"] < (18 * P / 2 + 4 * 525336576) / mp.GIB + 1e-6
    layers = 32 * x["layer_bytes_per_token"] * 4096 / mp.GIB
    assert 24 < layers < 27  # the usual estimate: ~25 GiB at 4 x 1024 tokens
    assert not none["fits"] and not ckpt["fits"] and offload["fits"] and x["chosen"] == offload
