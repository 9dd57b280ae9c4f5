"""The baselines PEFT ships (issue 20): VeRA, VB-LoRA, LoRA-FA (PEFT's LoRA + its LoRA-FA optimizer) and Lily, built
from their shipped configs on the tiny random models: what trains, that a few steps lower the loss, a save/load round
trip, counts against hand formulas, LoRA-FA's optimizer through its recipe, and that their new config entries leave
other methods' run identities alone."""

import math

import pytest
import torch
from omegaconf import OmegaConf
from peft import PeftModel

from idlora.config import compose
from idlora.errors import ConfigError
from idlora.methods import apply_method, count_parameters
from idlora.models.tiny import tiny_llama, tiny_mistral
from idlora.training.recipes import recipe_for

BASELINES = ("vera", "vblora", "lorafa", "lily")
# The adapter tensors each method trains (every other tensor, LoRA-FA's lora_A and VeRA's projections included, frozen).
TRAINED = {"vera": ("vera_lambda_b", "vera_lambda_d"), "vblora": ("vblora_logits_A", "vblora_logits_B",
                                                                 "vblora_vector_bank"),
           "lorafa": ("lora_B",), "lily": ("lily_A", "lily_B", "lily_router")}
TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
TOKENS = torch.randint(3, 250, (2, 12), generator=torch.Generator().manual_seed(0))


def _cfg(method: str, scale: str = "tiny"):
    return compose(["experiment=gsm8k_llama3", f"scale={scale}", f"method={method}"])


def _trained(name: str, method: str) -> bool:
    return any(f".{t}" in name or name.startswith(t) for t in TRAINED[method])


def _optimizer(cfg, model, lr: float):
    own = recipe_for(cfg.method).optimizer(cfg, model, lr, deepspeed=False)
    return own or torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)


def _move_off_zero(model):
    """Zero-initialised factors (VeRA's lambda_b, LoRA-FA's and Lily's B) give the others no gradient: move them."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=g) * 0.05)


@pytest.mark.parametrize("model_fn", [tiny_llama, tiny_mistral])
@pytest.mark.parametrize("method", BASELINES)
def test_builds_trains_only_its_tensors_and_reloads_exactly(method, model_fn, tmp_path):
    cfg = _cfg(method)
    base = model_fn()(TOKENS).logits
    model = apply_method(model_fn(), cfg.method).eval()
    start = model(TOKENS).logits
    if method == "vblora":  # both factors are mixtures of the random bank: the update is small, not zero, at init
        assert not torch.equal(start, base) and torch.allclose(start, base, atol=1e-2)
    else:
        torch.testing.assert_close(start, base, rtol=0, atol=1e-6)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(_trained(n, method) for n in trainable), sorted(trainable)
    assert {t for t in TRAINED[method] if any(t in n for n in trainable)} == set(TRAINED[method])
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}

    model.train()
    _move_off_zero(model)
    optimizer = _optimizer(cfg, model, lr=1e-2)
    losses = []
    for _ in range(4):
        loss = model(TOKENS, labels=TOKENS).loss
        loss.backward()
        if not losses:  # the first step: a gradient on exactly the trained tensors, each of them nonzero
            for n, p in model.named_parameters():
                assert (p.grad is not None and p.grad.abs().sum() > 0) == (n in trainable), n
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
    assert losses[-1] < losses[0], losses
    assert all(torch.equal(p, frozen[n]) for n, p in model.named_parameters() if n in frozen)  # A, base: untouched

    model.eval()
    expected = model(TOKENS).logits
    model.save_pretrained(tmp_path)
    loaded = PeftModel.from_pretrained(model_fn(), tmp_path).eval()
    torch.testing.assert_close(loaded(TOKENS).logits, expected, rtol=0, atol=0)


def test_counts_follow_hand_formulas_on_the_tiny_shapes():
    """Independent closed forms, per targeted (d_in, d_out) and summed over the tiny LLaMA's 2 blocks."""
    model = tiny_llama()
    shapes = {t: [(m.in_features, m.out_features) for n, m in model.named_modules() if n.endswith(t)] for t in TARGETS}
    flat = [s for per in shapes.values() for s in per]
    n_layers = len(shapes["q_proj"])
    assert n_layers == 2 and len(flat) == 14
    got = {}
    for method in BASELINES:
        method_cfg = _cfg(method).method
        got[method] = (method_cfg, count_parameters(apply_method(tiny_llama(), method_cfg))[0])
    vera, vb, fa, lily = (got[m][0] for m in BASELINES)
    lily_groups = math.ceil(n_layers / lily.stride_A)
    expected = {
        "vera": sum(vera.r + o for _, o in flat),  # lambda_d (r) and lambda_b (d_out) per layer
        "vblora": vb.num_vectors * vb.vector_length  # the bank, then the logits of A's and B's sub-vectors
        + sum(vb.r * (i + o) // vb.vector_length * vb.num_vectors for i, o in flat),
        "lorafa": sum(fa.r * o for _, o in flat),  # B only
        "lily": sum(lily_groups * lily.r * per[0][0] + lily.num_B * lily.r * per[0][1] + n_layers * lily.r * lily.num_B
                    for per in shapes.values()),  # A per stride_A layers, num_B shared B's, a router per layer
    }
    assert {m: n for m, (_, n) in got.items()} == expected
    # one shape by hand: tiny_llama's k_proj (64 -> 32) at VeRA r=8 trains 8 + 32 entries
    assert sum(p.numel() for n, p in apply_method(tiny_llama(), vera).named_parameters()
               if p.requires_grad and "layers.0.self_attn.k_proj" in n) == vera.r + 32


def test_paper_and_mini_ranks_give_budgets_near_loras():
    """The ranks of configs/scale/{paper,mini}.yaml: within 10% of LoRA's count (VeRA: cannot get near it)."""
    from idlora.models.meta import meta_model

    for scale, model_name in (("paper", "llama3_8b"), ("mini", "smollm2_135m")):
        counts = {}
        for method in ("lora", *BASELINES):
            with torch.device("meta"):
                counts[method] = count_parameters(apply_method(meta_model(model_name), _cfg(method, scale).method))[0]
        ratios = {m: counts[m] / counts["lora"] for m in BASELINES}
        assert all(0.95 < ratios[m] < 1.1 for m in ("vblora", "lorafa", "lily")), (scale, counts)
        assert ratios["vera"] < 0.1, (scale, counts)
    assert counts == {"lora": 2_442_240, "vera": 209_280, "vblora": 2_446_336, "lorafa": 2_488_320, "lily": 2_658_816}


def test_lorafa_trains_with_pefts_optimizer_and_refuses_what_it_cannot_do():
    from peft.optimizers.lorafa import LoraFAOptimizer

    cfg = _cfg("lorafa")
    model = apply_method(tiny_llama(), cfg.method)
    assert isinstance(recipe_for(cfg.method).optimizer(cfg, model, 1e-3, deepspeed=False), LoraFAOptimizer)
    assert recipe_for(_cfg("lora").method).optimizer(cfg, model, 1e-3, deepspeed=False) is None  # the loop's own
    with pytest.raises(ConfigError, match="configs/accelerate/ddp.yaml"):
        recipe_for(cfg.method).optimizer(cfg, model, 1e-3, deepspeed=True)
    bad = compose(["experiment=gsm8k_llama3", "scale=tiny", "method=lorafa", "train.betas=[0.9,0.95]"])
    with pytest.raises(ConfigError, match=r"train.betas=\[0.9,0.999\]"):
        recipe_for(bad.method).optimizer(bad, model, 1e-3, deepspeed=False)


def test_lorafa_launches_without_deepspeed_and_is_planned_so():
    from idlora.bench.memory_plan import zero_stage
    from idlora.runs.launch import accelerate_config

    assert accelerate_config("lorafa") == "configs/accelerate/ddp.yaml"
    assert {m: accelerate_config(m).rsplit("/", 1)[-1] for m in ("fft", "lora", "vera")} == \
        {"fft": "zero3.yaml", "lora": "zero2.yaml", "vera": "zero2.yaml"}
    assert (zero_stage("lorafa"), zero_stage("fft"), zero_stage("lily")) == (0, 3, 2)


def test_lily_mixes_its_bs_over_the_whole_batch():
    """A limitation of PEFT's Lily recorded in docs/DESIGN.md §2 item 7: the router's softmax is averaged over every
    token of the batch before the B's are mixed, so one sample's output depends on the others in its batch."""
    model = apply_method(tiny_llama(), _cfg("lily").method)
    _move_off_zero(model)
    model.eval()
    with torch.no_grad():
        alone = model(TOKENS[:1]).logits[0]
        batched = model(TOKENS).logits[0]
    assert not torch.allclose(alone, batched, atol=1e-6)


def test_new_config_entries_leave_other_methods_identities_alone():
    from idlora.results import run_identity

    lora = OmegaConf.to_container(_cfg("lora", "mini"), resolve=True)
    before = {**lora, "scale": {k: v for k, v in lora["scale"].items() if k != "vblora"}}
    before["scale"]["rank"] = {k: v for k, v in lora["scale"]["rank"].items() if k not in BASELINES}
    assert run_identity(lora) == run_identity(before)  # a record written before the baselines existed still matches
    vera = OmegaConf.to_container(_cfg("vera", "mini"), resolve=True)
    assert run_identity(vera)["scale"]["rank"]["vera"] == 256  # a run of the method keeps its own entry
    assert "vblora" not in run_identity(vera)["scale"] and "vblora" in run_identity(_cfg_plain("vblora"))["scale"]
    assert lora["scale"] == OmegaConf.to_container(_cfg("lora", "mini"), resolve=True)["scale"]  # input unchanged


def _cfg_plain(method: str) -> dict:
    return OmegaConf.to_container(_cfg(method, "mini"), resolve=True)


def test_unused_keys_are_refused_by_name():
    from idlora.methods import build_peft_config

    with pytest.raises(ConfigError, match=r"method 'vera' does not take \['alpha'\]"):
        build_peft_config({"name": "vera", "r": 8, "alpha": 16})
    with pytest.raises(ConfigError, match=r"method 'lily' does not take \['dropout'\]"):
        build_peft_config({"name": "lily", "r": 8, "dropout": 0.1})
    with pytest.raises(ConfigError, match="divisible by `vector_length`"):
        apply_method(tiny_llama(), {"name": "vblora", "r": 2, "vector_length": 48, "num_vectors": 4})


@pytest.mark.parametrize("method", BASELINES)
def test_evaluation_merges_the_fixed_updates_and_keeps_lily_routed(method):
    from idlora.eval.evaluate import inference_model

    model = apply_method(tiny_llama(), _cfg(method).method)
    _move_off_zero(model)
    model.eval()
    with torch.no_grad():
        expected = model(TOKENS).logits
        served = inference_model(model)
        assert (served is model) == (method == "lily")  # the others are merged into plain nn.Linear weights
        torch.testing.assert_close(served(TOKENS).logits, expected, rtol=1e-4, atol=1e-5)
