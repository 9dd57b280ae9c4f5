"""GPU check (``make gpu-check``, ``scripts/gpu_check.py``): what this repository has only run on CPUs, on one CUDA
device, in under 8 minutes. Writes ``results/bench/gpu_check.json`` with provenance.

Parts (each with a time budget; work not started before its part's budget runs out is skipped and the reason
recorded; a part that fails is recorded as an error and the others still run):

1. ``train``: 3 bf16 training steps of every method through ``idlora.training.loop.run`` (tiny scale: the paper's weights
   are not on the machine): the losses and the seconds per step (set-up included).
2. ``pmrc``: PMRC's torch backend on CUDA on one random matrix (fixed seed) of each LLaMA-3-8B projection shape, k=4,
   r=128, seconds per shape; and on one small matrix its k-means objective over the reference's
   (``k-means-constrained``, on the CPU).
3. ``fig3``: Figure 3's ratios at LLaMA-3-8B decoder-layer shapes (a LLaMA-3-8B with ``FIG3_LAYERS`` layers, random
   weights): prompt forward and decoding of each method (the paper's ranks) over the same model with its adapter
   disabled (= merged LoRA), timed with CUDA events, method and base back to back in alternating order per trial;
   the median ratio and a 95% bootstrap interval of the median.
4. ``generate``: HF ``generate`` tokens/s on a random SmolLM2-135M (greedy, fixed length), batch 1 and 8.
5. ``compile``: the prompt-forward ratios of part 3 with the model ``torch.compile``'d.

Without a CUDA device it prints so and writes nothing. ``dry_run`` runs every part on the CPU at tiny sizes (the
tests' way through these code paths; its numbers mean nothing) and writes only where ``out`` says.
"""

from __future__ import annotations

import math
import os
import platform
import tempfile
import time
from pathlib import Path

import accelerate
import peft
import torch
import transformers
from tqdm.auto import tqdm
from transformers import AutoConfig, AutoModelForCausalLM

from ..config import CONFIG_DIR, compose
from ..errors import ConfigError
from ..files import atomic_write_json
from ..methods import TABLE_ORDER, apply_method
from ..models.tiny import tiny_llama
from ..pmrc import kmeans as pmrc_kmeans
from ..results import git_commit
from ..stats import median_ci
from .efficiency import _randomize_adapter
from .trials import Timer, trial_ratios

PARTS = ("train", "pmrc", "fig3", "generate", "compile")
BUDGET_S = {"train": 120, "pmrc": 80, "fig3": 110, "generate": 40, "compile": 60}  # 410 s in all
TRAIN_METHODS = TABLE_ORDER  # every method
# Figure 3's methods at the paper's ranks (ID-LoRA r=128 k=4, LoRA r=32, HydraLoRA r=16 x3, MoELoRA r=8 x4), and
# HydraLoRA and MoELoRA as their official code computes them (method.impl=official, the same function).
FIG3_METHODS = {"idlora": {"name": "idlora", "r": 128, "alpha": 256, "k": 4, "selection": "serial"},
                "lora_unmerged": {"name": "lora", "r": 32, "alpha": 64},
                "hydralora": {"name": "hydralora", "r": 16, "alpha": 32, "n_experts": 3},
                "moelora": {"name": "moelora", "r": 8, "alpha": 16, "n_experts": 4}}
FIG3_METHODS.update({f"{m}_official": {**FIG3_METHODS[m], "impl": "official"} for m in ("hydralora", "moelora")})
FIG3_LAYERS = 4
SIZES = {  # real run | dry run
    "pmrc_shapes": ({(4096, 4096): 2, (1024, 4096): 2, (14336, 4096): 2, (4096, 14336): 1}, {(256, 64): 1}),
    "pmrc_r": (128, 16), "pmrc_small": ((1024, 1024), (128, 32)),
    "prompt": ((4, 512), (2, 16)), "decode_tokens": (32, 3), "trials": (9, 3),
    "gen_tokens": (128, 4), "gen_batches": ((1, 8), (1, 2)),
}


class Budget:
    """A part's deadline: ``ok(item)`` is False once it has passed, and the item is recorded as skipped."""

    def __init__(self, part: str, seconds: float):
        self.part, self.seconds, self.deadline = part, seconds, time.monotonic() + seconds
        self.skipped: list[dict] = []

    def ok(self, item: str) -> bool:
        if time.monotonic() <= self.deadline:
            return True
        self.skipped.append({"item": item, "reason": f"over the {self.part} part's budget of {self.seconds:.0f} s"})
        return False


def size(key: str, dry: bool):
    return SIZES[key][1 if dry else 0]


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _train_overrides(method: str, tmp: str, dry: bool) -> list[str]:
    precision = ["train.mixed_precision=no", "model.dtype=float32"] if dry else \
        ["train.mixed_precision=bf16", "model.dtype=bfloat16"]
    return ["experiment=multitask_llama3", "scale=tiny", f"method={method}", f"train.max_steps={2 if dry else 3}",
            "train.save_steps=0", "train.wandb=false", "evaluate_after_training=false", f"output_root={tmp}",
            f"results_dir={tmp}", *precision]


def part_train(device: str, dry: bool, budget: Budget, ctx: dict) -> dict:
    """A few training steps of each method through the real training path (``idlora.training.loop.run``)."""
    # imported in its part: should the training stack fail to import on the GPU machine (its wheels,
    # runs/wheels.py), this part records the error and the other parts still run
    from ..training.loop import run

    methods = ctx.get("methods") or (("idlora",) if dry else TRAIN_METHODS)
    out, old_cache = {}, os.environ.get("IDLORA_CACHE")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["IDLORA_CACHE"] = str(Path(tmp) / "cache")  # PMRC indices and data of this check only
        try:
            for method in tqdm(methods, desc="gpu-check: train", unit="method"):
                if not budget.ok(method):
                    continue
                start = time.perf_counter()
                summary = run(compose(_train_overrides(method, tmp, dry)))
                seconds = time.perf_counter() - start
                losses = summary["loss_curve"]
                out[method] = {"losses": losses, "steps": summary["steps"], "seconds": seconds,
                               "seconds_per_step_with_setup": seconds / summary["steps"],
                               "finite": all(math.isfinite(x) for x in losses)}
        finally:
            os.environ.pop("IDLORA_CACHE") if old_cache is None else os.environ.update(IDLORA_CACHE=old_cache)
    return {"methods": out}


def part_pmrc(device: str, dry: bool, budget: Budget, ctx: dict) -> dict:
    """PMRC's torch backend on the device on LLaMA-3-8B's projection shapes, and its objective vs the reference."""
    gen, r, shapes = torch.Generator().manual_seed(0), size("pmrc_r", dry), {}
    for (d_out, d_in), per_layer in tqdm(size("pmrc_shapes", dry).items(), desc="gpu-check: PMRC", unit="shape"):
        if not budget.ok(f"{d_out}x{d_in}"):
            continue
        W = torch.randn(d_out, d_in, generator=gen).to(device)
        _sync(device)
        start = time.perf_counter()
        _, _, objective = pmrc_kmeans.constrained_kmeans(W, 4, r, seed=0)
        _sync(device)
        shapes[f"{d_out}x{d_in}"] = {"seconds": time.perf_counter() - start, "objective": objective,
                                     "per_layer": per_layer}
    out = {"k": 4, "r": r, "shapes": shapes,
           "llama3_8b_estimate_seconds": 32 * sum(s["seconds"] * s["per_layer"] for s in shapes.values())}
    (d_out, d_in), r_small = size("pmrc_small", dry), size("pmrc_r", dry)
    try:  # optional on the GPU machine: its wheels leave scipy out unless WHEELS_ALL=1 (runs/wheels.py)
        import k_means_constrained  # noqa: F401
    except ImportError as e:
        budget.skipped.append({"item": "objective vs reference", "reason": f"k-means-constrained unavailable ({e}); "
                               "make wheels WHEELS_ALL=1 brings scipy"})
        return out
    if budget.ok("objective vs reference"):
        W = torch.randn(d_out, d_in, generator=gen)
        start = time.perf_counter()
        _, _, ours = pmrc_kmeans.constrained_kmeans(W.to(device), 4, r_small, seed=0)
        mid = time.perf_counter()
        _, _, ref = pmrc_kmeans.reference_kmeans(W, 4, r_small, seed=0)
        out["vs_reference"] = {"shape": [d_out, d_in], "r": r_small, "objective_ratio": ours / ref,
                               "seconds_torch": mid - start, "seconds_reference": time.perf_counter() - mid}
    return out


def _fig3_base(device: str, dry: bool):
    """LLaMA-3-8B's decoder layers (``FIG3_LAYERS`` of them) and vocabulary, random weights; a tiny LLaMA when dry."""
    if dry:
        return tiny_llama(seed=0).eval()
    config = AutoConfig.from_pretrained(CONFIG_DIR / "hf" / "llama3_8b")
    config.num_hidden_layers = FIG3_LAYERS
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.config.use_cache = True
    return model.eval()


def _fig3_methods(dry: bool, compiled: bool = False) -> dict:
    """The paper's settings; dry: ID-LoRA only, at a rank the tiny LLaMA fits (k*r <= 32 rows)."""
    if not dry:
        return FIG3_METHODS
    small = {"idlora": 4}
    return {k: {**FIG3_METHODS[k], "r": r, "alpha": 2 * r} for k, r in small.items()}


def _inputs(model, device: str, dry: bool):
    batch, seq = size("prompt", dry)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, model.config.vocab_size, (batch, seq), generator=g).to(device)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}, ids[:1, :16]


def _method_ratios(model, batch: dict, prompt: torch.Tensor, device: str, dry: bool, compiled: bool) -> dict:
    """Prompt-forward (and, not compiled, decode) ratios of an adapted model over itself with the adapter off."""
    trials, new = size("trials", dry), size("decode_tokens", dry)
    timer = Timer(device)
    fwd = torch.compile(model, backend="eager" if dry else "inductor", dynamic=False) if compiled else model

    def forward():
        return fwd(**batch)

    def forward_base():
        with model.disable_adapter():
            return fwd(**batch)

    out = {"prompt_forward": median_ci(trial_ratios(forward, forward_base, trials, warmup=2, timer=timer))}
    if compiled:
        return out

    def decode():
        return model.generate(input_ids=prompt, max_new_tokens=new, min_new_tokens=new, do_sample=False,
                              use_cache=True, pad_token_id=0)

    def decode_base():
        with model.disable_adapter():
            return decode()

    out["decode"] = median_ci(trial_ratios(decode, decode_base, trials, timer=timer))
    return out


def _fig3(device: str, dry: bool, budget: Budget, ctx: dict, compiled: bool) -> dict:
    base = ctx.get("fig3_base")
    if base is None:
        base = ctx["fig3_base"] = _fig3_base(device, dry)
    batch, prompt = _inputs(base, device, dry)
    out = {}
    label = "compile" if compiled else "fig3"
    methods = _fig3_methods(dry, compiled)
    for name, cfg in tqdm(methods.items(), desc=f"gpu-check: {label}", unit="method"):
        if not budget.ok(name):
            continue
        model = apply_method(base, cfg)
        _randomize_adapter(model)
        model.to(device=device, dtype=next(base.parameters()).dtype).eval()
        try:
            out[name] = _method_ratios(model, batch, prompt, device, dry, compiled)
        finally:
            if compiled:
                torch._dynamo.reset()
            model.unload()  # back to the plain base model for the next method
            if hasattr(base, "peft_config"):
                del base.peft_config
    shape = {"layers": base.config.num_hidden_layers, "hidden": base.config.hidden_size,
             "prompt": list(batch["input_ids"].shape), "decode_tokens": size("decode_tokens", dry)}
    return {"model": shape, "methods_config": methods, "ratios": out}


def part_fig3(device, dry, budget, ctx):
    """Figure 3's time ratios over the merged model (= the adapter disabled)."""
    return _fig3(device, dry, budget, ctx, compiled=False)


def part_compile(device, dry, budget, ctx):
    """Figure 3's prompt-forward ratios with the model torch.compile'd (inductor; ``eager`` when dry)."""
    return _fig3(device, dry, budget, ctx, compiled=True)


def part_generate(device: str, dry: bool, budget: Budget, ctx: dict) -> dict:
    """HF generate tokens/s on a random SmolLM2-135M (greedy, fixed length), per batch size."""
    if dry:
        model = tiny_llama(seed=0)
    else:
        torch.manual_seed(0)
        with torch.device(device):
            model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(CONFIG_DIR / "hf" / "smollm2_135m"),
                                                     dtype=torch.bfloat16)
    model.eval().config.use_cache = True
    new, timer, out = size("gen_tokens", dry), Timer(device), {}
    for b in tqdm(size("gen_batches", dry), desc="gpu-check: generate", unit="batch"):
        if not budget.ok(f"batch {b}"):
            continue
        ids = torch.randint(3, model.config.vocab_size, (b, 32), generator=torch.Generator().manual_seed(b))
        ids = ids.to(device)

        def gen(n=new):
            return model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=n,
                                  min_new_tokens=n, do_sample=False, use_cache=True, pad_token_id=0)

        with torch.no_grad():
            gen(4)  # warm-up
            seconds = timer(gen)
        out[f"batch_{b}"] = {"new_tokens": new, "seconds": seconds, "tokens_per_s": b * new / seconds}
    return {"model": "smollm2_135m (random weights)" if not dry else "tiny_llama", "generate": out}


PART_FUNCS = {"train": part_train, "pmrc": part_pmrc, "fig3": part_fig3, "generate": part_generate,
              "compile": part_compile}


def provenance(device: str) -> dict:
    cuda = device.startswith("cuda")
    return {"device": torch.cuda.get_device_name(0) if cuda else platform.processor() or platform.machine(),
            "torch": torch.__version__, "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
            "transformers": transformers.__version__, "peft": peft.__version__, "accelerate": accelerate.__version__,
            "python": platform.python_version(), "commit": git_commit(), "date": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def run_part(part: str, device: str, dry: bool, ctx: dict) -> dict:
    budget = Budget(part, BUDGET_S[part])
    start = time.perf_counter()
    try:
        result, status = PART_FUNCS[part](device, dry, budget, ctx), "ok"
    except Exception as e:  # recorded; the other parts still run
        result, status = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"}, "error"
    return {"status": status, "seconds": time.perf_counter() - start, "budget_s": BUDGET_S[part],
            "skipped": budget.skipped, **result}


def run(dry_run: bool = False, out: str | None = None, parts=PARTS, methods=None) -> dict | None:
    """Run the check; returns the report (None, and nothing written, without a CUDA device unless ``dry_run``)."""
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        raise ConfigError(f"unknown part(s) {unknown}; valid: {', '.join(PARTS)} (e.g. parts=train,pmrc)")
    if not dry_run and not torch.cuda.is_available():
        print("no CUDA device is present: nothing checked, nothing written (dry_run=true runs every part on the "
              "CPU at tiny sizes)")
        return None
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here needs the hub; a machine without network must
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")  # not wait on lookups (PEFT's save_pretrained tries one)
    device = "cpu" if dry_run else "cuda"
    report = {"dry_run": dry_run, "provenance": provenance(device), "parts": {}}
    ctx = {"methods": methods}
    for part in parts:
        report["parts"][part] = run_part(part, device, dry_run, ctx)
        print(f"gpu-check: {part}: {report['parts'][part]['status']} in {report['parts'][part]['seconds']:.1f} s")
    out = out if out is not None or dry_run else "results/bench/gpu_check.json"
    if out:
        atomic_write_json(out, report)
        print(f"wrote {out}")
    return report
