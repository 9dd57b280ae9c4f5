"""``make bench PARTS=cpu``: what the mini replication gets out of the CPU at hand (results/bench/cpu.json).

On the mini model (SmolLM2-135M, LoRA at the mini rank, one thread) and the mini scale's own training batches
(16 steps of the multitask data, batch 4):

* ``padding``: the share of padding in those batches when padded (what training did before ``train.packing``);
* ``train``: each step timed four ways, in turn within each trial (the order rotating): fp32 or bf16 autocast,
  padded or packed. Per trial the ratios fp32/bf16 (packed and padded), padded/packed (bf16) and before/after
  ((fp32, padded) over (bf16, packed)), each reported as the median over trials with a 95% bootstrap interval of
  the median (``stats.median_ci``: the paired interval); tokens/s (real tokens over the summed step time) per way;
* ``roofline``: the FLOPs of a step (``torch.utils.flop_counter``) over its time, beside the physical limit on this
  machine: every GEMM the step makes (recorded at the dispatcher: forward and backward), replayed as a plain
  contiguous GEMM of the same shape in fp32 and in bf16; the step's share of that peak in its own dtype;
* ``generation`` and ``scoring``: greedy generation (mini eval batch) and a teacher-forced log-likelihood pass
  (``idlora.eval.dev``, the dev metric's and multiple choice's kind of pass), fp32 over bf16 with intervals,
  tokens/s and GFLOP/s.

Timings live here, never in tests. Provenance: torch, threads, CPU and its bf16 features, the precision rule's
answer, the load average before and after (the machine is shared), the commit and the date.
"""

from __future__ import annotations

import os
import platform
import subprocess
import time

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from ..config import compose
from ..data import build_prompt, load_dataset_for, tokenize_example
from ..data.templates import SFTCollator, padding_fraction
from ..eval.dev import dev_loss
from ..files import atomic_write_json
from ..methods import apply_method
from ..models import load_model_and_tokenizer
from ..models.precision import autocast, decision, native_bf16_features, scoring
from ..stats import median_ci
from ..training.loop import global_batches
from .trials import CPU_TIMER

GEMMS = {torch.ops.aten.mm.default, torch.ops.aten.addmm.default, torch.ops.aten.bmm.default,
         torch.ops.aten.baddbmm.default}
WAYS = {"fp32_padded": ("no", False), "fp32_packed": ("no", True), "bf16_padded": ("bf16", False),
        "bf16_packed": ("bf16", True)}
RATIOS = {"fp32_over_bf16_packed": ("fp32_packed", "bf16_packed"),
          "fp32_over_bf16_padded": ("fp32_padded", "bf16_padded"),
          "padded_over_packed_bf16": ("bf16_padded", "bf16_packed"),
          "before_over_after": ("fp32_padded", "bf16_packed")}


class _GemmRecorder(TorchDispatchMode):
    """Records (m, k, n, batch) of every GEMM an operation makes, forward and backward."""

    def __init__(self):
        super().__init__()
        self.shapes: list[tuple[int, int, int, int]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in GEMMS:
            a, b = (args[1], args[2]) if func in (torch.ops.aten.addmm.default, torch.ops.aten.baddbmm.default) \
                else (args[0], args[1])
            batch = a.shape[0] if a.dim() == 3 else 1
            self.shapes.append((a.shape[-2], a.shape[-1], b.shape[-1], batch))
        return func(*args, **(kwargs or {}))


def gemm_peak(shapes: list[tuple[int, int, int, int]], dtype: torch.dtype, repeats: int = 3) -> dict:
    """Plain GEMMs of ``shapes`` in ``dtype``, each distinct shape timed ``repeats`` times (best kept) and counted
    as often as it occurs: {"gflop", "seconds", "gflops_per_s"}, the rate at which these GEMMs alone can run."""
    counts: dict[tuple, int] = {}
    for s in shapes:
        counts[s] = counts.get(s, 0) + 1
    flops = seconds = 0.0
    for (m, k, n, batch), count in counts.items():
        a, b = torch.randn(batch, m, k).to(dtype), torch.randn(batch, k, n).to(dtype)
        torch.bmm(a, b)  # warm-up
        best = min(CPU_TIMER(lambda: torch.bmm(a, b)) for _ in range(repeats))
        flops += 2.0 * m * k * n * batch * count
        seconds += best * count
    return {"gflop": flops / 1e9, "seconds": seconds, "gflops_per_s": flops / seconds / 1e9}


def _mini_setup(steps: int, scale: str = "mini"):
    """(config, model with the mini LoRA, tokenizer, the mini multitask run's first ``steps`` batches as tokenised
    example lists, and their records in the same order)."""
    cfg = compose(["experiment=multitask_llama3", "method=lora", f"scale={scale}"])
    model, tokenizer = load_model_and_tokenizer(cfg.model)
    model = apply_method(model, dict(cfg.method), seed=cfg.seed)
    records = load_dataset_for(cfg.data, scale=cfg.scale.name, seed=cfg.seed)
    kept = [(r, e) for r in records if (e := tokenize_example(r, tokenizer, cfg.model.family, cfg.train.max_length))]
    order = [i for _, idx in global_batches(len(kept), cfg.train.batch_size, cfg.seed, steps) for i in idx]
    size = int(cfg.train.batch_size)
    batches = [[kept[i][1] for i in order[j:j + size]] for j in range(0, len(order), size)]
    return cfg, model, tokenizer, batches, [kept[i][0] for i in order]


def _stepper(model, tokenizer):
    """step(examples, way): one training step (forward, backward, AdamW) of ``examples`` in ``way`` (``WAYS``)."""
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    collators = {pack: SFTCollator(tokenizer, pack=pack) for pack in (False, True)}
    model.train()

    def step(examples, way):
        mixed, pack = WAYS[way]
        with autocast(mixed, "cpu"):
            loss = model(**collators[pack](examples), use_cache=False).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step, collators


def train_part(model, tokenizer, batches: list[list[dict]], trials: int) -> dict:
    """Padding share, the four ways' tokens/s and the paired ratios (``RATIOS``) over ``trials`` trials, each on the
    next of the mini run's batches."""
    step, _ = _stepper(model, tokenizer)
    for way in WAYS:  # warm-up: oneDNN builds its kernels for each dtype
        step(batches[0], way)
    seconds = {w: [] for w in WAYS}
    tokens = []
    names = list(WAYS)
    for t in range(trials):
        batch = batches[t % len(batches)]
        tokens.append(sum(len(e["input_ids"]) for e in batch))
        for way in names[t % len(names):] + names[:t % len(names)]:  # rotate who goes first
            seconds[way].append(CPU_TIMER(lambda: step(batch, way)))
    lengths = [len(e["input_ids"]) for b in batches for e in b]
    spans = [list(range(i, i + len(b))) for i, b in zip(_offsets(batches), batches)]
    return {"padding_fraction": padding_fraction(lengths, spans),
            "tokens_per_s": {w: sum(tokens) / sum(s) for w, s in seconds.items()},
            "step_seconds_median": {w: sorted(s)[len(s) // 2] for w, s in seconds.items()},
            "ratios": {name: median_ci([x / y for x, y in zip(seconds[a], seconds[b])])
                       for name, (a, b) in RATIOS.items()},
            "trials": trials, "tokens_per_step_mean": sum(tokens) / len(tokens)}


def _offsets(batches: list[list]) -> list[int]:
    out, at = [], 0
    for b in batches:
        out.append(at)
        at += len(b)
    return out


def roofline_part(model, tokenizer, batch: list[dict]) -> dict:
    """A packed step's FLOPs and GEMMs; per dtype its achieved GFLOP/s (best of 3 steps) beside the plain-GEMM peak of
    the same shapes, and the share of that peak the step reaches."""
    step, _ = _stepper(model, tokenizer)
    out = {}
    for dtype, way in ((torch.float32, "fp32_packed"), (torch.bfloat16, "bf16_packed")):
        step(batch, way)
        recorder, counter = _GemmRecorder(), FlopCounterMode(display=False)
        with counter, recorder:
            step(batch, way)
        flops = counter.get_total_flops()
        best = min(CPU_TIMER(lambda: step(batch, way)) for _ in range(3))
        peak = gemm_peak(recorder.shapes, dtype)
        gemm_flops = sum(2.0 * m * k * n * b for m, k, n, b in recorder.shapes)
        out[way.split("_")[0]] = {
            "step_gflop": flops / 1e9, "gemm_gflop": gemm_flops / 1e9, "gemms": len(recorder.shapes),
            "step_seconds": best, "achieved_gflops_per_s": flops / best / 1e9,
            "gemm_peak_gflops_per_s": peak["gflops_per_s"], "gemm_only_seconds": peak["seconds"],
            "share_of_peak": flops / best / 1e9 / peak["gflops_per_s"]}
    return out


def _generation(model, tokenizer, prompts: list[str], new_tokens: int):
    """fn() generating ``new_tokens`` greedy tokens for ``prompts`` (one left-padded batch)."""
    tokenizer.padding_side = "left"
    enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    def fn():
        return model.generate(**enc, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                              use_cache=True, pad_token_id=pad)

    return fn, len(prompts) * new_tokens


def _paired(model, fn, trials: int, tokens: int) -> dict:
    """fn() timed in fp32 and bf16 in turn (as scoring runs: ``precision.scoring``): fp32/bf16 ratio with its interval, tokens/s and GFLOP/s each."""
    seconds = {"no": [], "bf16": []}
    flops = {}
    for mixed in seconds:
        with scoring(mixed, model):
            fn()
            counter = FlopCounterMode(display=False)
            with counter:
                fn()
        flops[mixed] = counter.get_total_flops()
    for t in range(trials):
        for mixed in (("no", "bf16") if t % 2 == 0 else ("bf16", "no")):
            with scoring(mixed, model):
                seconds[mixed].append(CPU_TIMER(fn))
    out = {"fp32_over_bf16": median_ci([a / b for a, b in zip(seconds["no"], seconds["bf16"])]), "trials": trials}
    for mixed, name in (("no", "fp32"), ("bf16", "bf16")):
        med = sorted(seconds[mixed])[len(seconds[mixed]) // 2]
        out[name] = {"seconds_median": med, "tokens_per_s": tokens / med, "gflop": flops[mixed] / 1e9,
                     "achieved_gflops_per_s": flops[mixed] / med / 1e9}
    return out


def inference_parts(cfg, model, tokenizer, records: list[dict], trials: int) -> dict:
    """Generation (a mini eval batch of the run's prompts, 32 new tokens) and a log-likelihood pass (the dev metric's
    pass over 64 records' answers), fp32 against bf16."""
    model.eval()
    family, rows = cfg.model.family, int(cfg.scale.eval_batch_size)
    prompts = [build_prompt(r["instruction"], r.get("input", ""), family, tokenizer) for r in records[:rows]]
    gen, gen_tokens = _generation(model, tokenizer, prompts, 32)
    items = records[:64]
    answer_tokens = dev_loss(model, tokenizer, items, family, int(cfg.train.max_length))["tokens"]

    def score():
        return dev_loss(model, tokenizer, items, family, int(cfg.train.max_length))

    return {"generation": {**_paired(model, gen, trials, gen_tokens), "rows": len(prompts), "new_tokens": 32},
            "scoring": {**_paired(model, score, trials, answer_tokens), "items": len(items)}}


def _provenance(load_before: tuple) -> dict:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                check=False).stdout.strip() or None
    except OSError:
        commit = None
    caps = torch.cpu.get_capabilities()
    return {"torch": torch.__version__, "threads": torch.get_num_threads(), "machine": platform.machine(),
            "cpu": caps.get("cpu_name"), "bf16_features": native_bf16_features(),
            "precision_auto": decision("auto", "cpu"), "load_average_before": list(load_before),
            "load_average_after": list(os.getloadavg()), "commit": commit,
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def run_cpu_benchmark(out: str = "results/bench/cpu.json", trials: int = 12, steps: int = 16,
                      quick: bool = False) -> dict:
    """Every measurement of this module on one thread; writes ``out`` and prints the headline numbers. ``quick``: the
    tiny model and 2 trials (checks the pipeline in seconds; its numbers mean nothing)."""
    torch.set_num_threads(1)
    load_before = os.getloadavg()
    trials = 2 if quick else trials
    cfg, model, tokenizer, batches, records = _mini_setup(steps, "tiny" if quick else "mini")
    report = {"model": cfg.model.name, "method": {"name": "lora", "r": int(cfg.method.r)}, "quick": quick,
              "batches": {"steps": len(batches), "batch_size": int(cfg.train.batch_size)}}
    report["train"] = train_part(model, tokenizer, batches, trials)
    report["roofline"] = roofline_part(model, tokenizer, batches[0])
    report.update(inference_parts(cfg, model, tokenizer, records, max(2, trials // 2)))
    report["provenance"] = _provenance(load_before)
    atomic_write_json(out, report)
    _print(report, out)
    return report


def _print(report: dict, out: str) -> None:
    t, r = report["train"], report["roofline"]
    print(f"CPU bench on {report['model']} ({report['provenance']['cpu']}, {report['provenance']['threads']} thread; "
          f"bf16 features: {', '.join(report['provenance']['bf16_features']) or 'none'}):")
    print(f"  padding of the mini batches when padded: {100 * t['padding_fraction']:.1f}%")
    for way, rate in t["tokens_per_s"].items():
        print(f"  training tokens/s {way:<12} {rate:8.1f}")
    for name, ci in t["ratios"].items():
        print(f"  step time {name:<24} {ci['median']:.3f} [{ci['ci95'][0]:.3f}, {ci['ci95'][1]:.3f}] (n={ci['trials']})")
    for dtype, v in r.items():
        print(f"  {dtype} step: {v['achieved_gflops_per_s']:.1f} GFLOP/s, plain GEMMs of its shapes "
              f"{v['gemm_peak_gflops_per_s']:.1f} GFLOP/s: {100 * v['share_of_peak']:.0f}% of that peak")
    for part in ("generation", "scoring"):
        g = report[part]
        ci = g["fp32_over_bf16"]
        print(f"  {part}: fp32/bf16 {ci['median']:.3f} [{ci['ci95'][0]:.3f}, {ci['ci95'][1]:.3f}]; tokens/s fp32 "
              f"{g['fp32']['tokens_per_s']:.1f}, bf16 {g['bf16']['tokens_per_s']:.1f}; GFLOP/s fp32 "
              f"{g['fp32']['achieved_gflops_per_s']:.1f}, bf16 {g['bf16']['achieved_gflops_per_s']:.1f}")
    print(f"wrote {out}")
