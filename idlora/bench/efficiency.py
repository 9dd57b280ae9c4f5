"""Efficiency measurements behind Figure 3 (``make bench``, ``scripts/bench_efficiency.py``).

Everything is measured in one process, side by side, and reported as ratios to merged LoRA (which costs exactly
what the base model costs): absolute times on a shared CPU are noise, ratios measured in the same run are not.
Each trial times the two compared models back to back (alternating which goes first); the median over trials
of the per-trial ratio is reported, with a 95% bootstrap interval of that median in the report's
``intervals`` (``stats.median_ci``), and every trial's ratio in ``samples`` (n = their number). Where a part asks
for a precision (the paper-shape panel, the decoding pair) trials go on until the interval is that narrow or a cap is
reached (``trials.trial_ratios``, the paired-trial rule every benchmark shares). ``--parts`` re-measures some parts
and keeps the others; the run a part replaces is kept in ``history`` (per metric its median, interval and n), so
``between_runs`` gives the spread between runs, which on a shared machine is wider than any one run's interval.

HydraLoRA and MoELoRA are timed twice in the same run: ours (one fused product per layer) and ``<method>_official``
(``method.impl=official``: the official code's loop over the experts, the same function), so Figure 3 shows where
the paper's overheads come from. The ``compile`` part (not run by default: inductor compiles for minutes on a
CPU) times the prompt forward of every method ``torch.compile``'d over the compiled merged model, and
``compile_decode`` ID-LoRA's decoding against unmerged LoRA's compiled over a static KV cache.

Parts: ``shapes`` (Figure 3's primary panel: every method at the paper's ranks on LLaMA-3-8B-shaped decoder
layers, random weights; ``paper_shapes``; metrics prefixed ``paper_shapes_``), ``infer`` (the same on the
benchmark's model, the mini scale's ranks), ``decode`` (``decode_time_ratio_idlora_vs_lora_unmerged``: ID-LoRA's
and unmerged LoRA's batch-1 decoding paired directly), ``train``, ``pmrc`` (``bench.pmrc``), ``compile`` and
``compile_decode``.

Extra memory at inference is counted exactly, without a GPU: the adapter's parameters and buffers, plus the
difference in *peak live tensor bytes* during a forward pass, tracked by a dispatch mode that records every
tensor an operator allocates and when it is freed (``peak_live_bytes``).
"""

from __future__ import annotations

import copy
import json
import platform
import time
import weakref
from collections.abc import Callable
from pathlib import Path

import torch
from omegaconf import OmegaConf
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from tqdm.auto import tqdm

from . import paper_shapes
from . import pmrc as pmrc_bench
from ..bench_format import BENCH_PARTS, PAIR_KEY, SHAPES, between_runs, metric_part, run_summary
from ..config import compose, load_group
from ..errors import ConfigError
from ..files import atomic_write_json
from ..methods import apply_method
from ..models import load_model_and_tokenizer
from ..models.meta import meta_model
from ..stats import median_ci
from .trials import trial_ratios


class _LiveBytes(TorchDispatchMode):
    """Tracks bytes of tensor storages created by operators while active; ``peak`` is the high-water mark."""

    def __init__(self):
        super().__init__()
        self.live = 0
        self.peak = 0
        self._seen: set[int] = set()

    def _free(self, key: int, nbytes: int) -> None:
        self._seen.discard(key)
        self.live -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        # an output that shares an argument's storage (a view such as linear's W.t(), an in-place op) allocated
        # nothing: without this, every weight a forward touches would count as live memory
        inputs = {a.untyped_storage().data_ptr() for a in tree_flatten((args, kwargs))[0]
                  if isinstance(a, torch.Tensor) and not a.is_meta}
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and not t.is_meta:
                storage = t.untyped_storage()
                key = storage.data_ptr()
                if key and key not in self._seen and key not in inputs:
                    self._seen.add(key)
                    nbytes = storage.nbytes()
                    self.live += nbytes
                    self.peak = max(self.peak, self.live)
                    weakref.finalize(storage, self._free, key, nbytes)
        return out


def peak_live_bytes(fn: Callable[[], object]) -> int:
    """Peak bytes of tensors allocated by operators while ``fn`` runs (inputs and weights excluded)."""
    mode = _LiveBytes()
    with mode, torch.no_grad():
        result = fn()
        peak = mode.peak
    del result
    return peak


def adapter_bytes(model: torch.nn.Module) -> int:
    """Bytes of the adapter's own tensors: every parameter and buffer outside the frozen base layers."""
    total = 0
    for name, t in list(model.named_parameters()) + list(model.named_buffers()):
        if any(p in name for p in ("idlora_", "hydralora_", "moelora_", "lora_")):
            total += t.numel() * t.element_size()
    return total


class Found(dict):
    """What the measurements found besides their medians: metric -> its 95% interval ``[low, high]``, and in
    ``samples`` metric -> its per-trial ratios (their number is the interval's n; the report's ``samples``)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.samples: dict[str, list[float]] = {}

    def add(self, prefix: str, other: Found) -> None:
        """``other``'s intervals and samples, their keys prefixed."""
        self.update({prefix + k: v for k, v in other.items()})
        self.samples.update({prefix + k: v for k, v in other.samples.items()})


def _record(out: dict, intervals: dict | None, key: str, ratios: list[float]) -> None:
    """``out[key]`` = the median ratio; ``intervals[key]`` = its 95% bootstrap interval (when collected), and the
    trials' ratios in ``intervals.samples`` (a ``Found``)."""
    summary = median_ci(ratios)
    out[key] = float(summary["median"])
    if intervals is not None:
        intervals[key] = [float(v) for v in summary["ci95"]]
    if isinstance(intervals, Found):
        intervals.samples[key] = [round(float(r), 5) for r in ratios]


def train_step_fn(model, batch, lr: float = 1e-4) -> Callable[[], None]:
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr)
    model.train()

    def step():
        with torch.enable_grad():
            loss = model(**batch).loss
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

    return step


def _randomize_adapter(model: torch.nn.Module, seed: int = 0) -> None:
    """Non-zero adapter weights, so no path can be skipped because B = 0."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float32).to(p.dtype) * 0.02)


def inference_ratios(base, method_cfgs: dict[str, dict], prompt_batch: dict, decode_prompt: torch.Tensor,
                     new_tokens: int, trials: int, intervals: dict | None = None,
                     trials_of: dict[str, int] | None = None, precision: float | None = None,
                     max_trials: int | None = None) -> dict[str, float]:
    """Prompt-forward and decode latency of each method over the base model (= merged LoRA), and extra memory;
    each ratio's interval goes to ``intervals``. ``trials_of``: a method's own number of trials (else ``trials``,
    then more up to ``max_trials`` until the interval is ``precision`` wide either side: ``trial_ratios``).

    Each adapter is built on the shared base model, timed interleaved with the same model with its adapter
    disabled (the base), then unloaded, so a large model is held in memory once."""
    out: dict[str, float] = {}
    base.eval()
    base_peak = peak_live_bytes(lambda: base(**prompt_batch))
    for name, cfg in tqdm(method_cfgs.items(), desc="bench: inference", unit="method"):
        model = apply_method(base, cfg)
        _randomize_adapter(model)
        model.eval()

        def forward(m=model):
            return m(**prompt_batch)

        def forward_base(m=model):
            with m.disable_adapter():
                return m(**prompt_batch)

        decode = _decoder(model, decode_prompt, new_tokens)

        def decode_base(m=model):
            with m.disable_adapter():
                return decode()

        own = (trials_of or {}).get(name)
        until = {} if own else {"precision": precision, "max_trials": max_trials}
        for key, fn, fn_base in (("infer", forward, forward_base), ("decode", decode, decode_base)):
            _record(out, intervals, f"{key}_time_ratio_{name}", trial_ratios(fn, fn_base, own or trials, **until))
        peak = peak_live_bytes(forward)
        out[f"adapter_bytes_{name}"] = float(adapter_bytes(model))
        out[f"activation_bytes_{name}"] = float(max(0, peak - base_peak))
        out[f"extra_memory_{name}"] = out[f"adapter_bytes_{name}"] + out[f"activation_bytes_{name}"]
        model.unload()  # back to the plain base model for the next method
        if hasattr(base, "peft_config"):
            del base.peft_config
    for other in ("hydralora", "moelora", "hydralora_official", "moelora_official"):
        if f"extra_memory_{other}" in out and "extra_memory_idlora" in out:
            out[f"extra_memory_ratio_idlora_vs_{other}"] = out["extra_memory_idlora"] / out[f"extra_memory_{other}"]
    return out


def _decoder(model, decode_prompt: torch.Tensor, new_tokens: int, compile_backend: str | None = None):
    """Batch-1 greedy decoding of ``new_tokens`` tokens by ``model``; ``compile_backend``: its forward
    ``torch.compile``'d over a static KV cache (fixed shapes: one graph for the prompt, one for every decoding step)."""
    kwargs = {}
    if compile_backend:
        inner = model.get_base_model()
        inner.forward = torch.compile(inner.forward, backend=compile_backend, dynamic=False)
        kwargs["cache_implementation"] = "static"

    def decode():
        return model.generate(input_ids=decode_prompt, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                              do_sample=False, use_cache=True, pad_token_id=0, **kwargs)

    return decode


def decode_pair_ratios(base, cfg: dict, other: dict, decode_prompt: torch.Tensor, new_tokens: int, trials: int,
                       compile_backend: str | None = None, precision: float | None = None,
                       max_trials: int | None = None) -> list[float]:
    """Per paired trial, batch-1 decoding seconds of method ``cfg`` over method ``other`` (each on its own copy of
    ``base``, timed back to back): the direct comparison of two adapters' decoding, eager or compiled. ``precision``,
    ``max_trials``: more trials until the interval is that narrow (``trial_ratios``)."""
    decoders = []
    for c in (cfg, other):
        model = apply_method(copy.deepcopy(base), c)
        _randomize_adapter(model)
        decoders.append(_decoder(model.eval(), decode_prompt, new_tokens, compile_backend))
    try:
        return trial_ratios(*decoders, trials, warmup=2 if compile_backend else 1, precision=precision,
                            max_trials=max_trials)
    finally:
        if compile_backend:
            torch._dynamo.reset()


def paper_adapter_bytes(model_name: str = "llama3_8b") -> dict[str, float]:
    """Adapter bytes (parameters and buffers) at the paper's settings on the paper's model shapes, exact, from
    meta-device models (no weights): the parameter part of Figure 3's extra-memory claim where it is made.
    At mini scale the routers (k x d_in per module) weigh more next to the small B's than at paper scale."""
    sizes = {}
    for name in ("idlora", "hydralora", "moelora"):
        cfg = OmegaConf.to_container(compose(["scale=paper", f"method={name}"]).method)
        with torch.device("meta"):
            sizes[name] = adapter_bytes(apply_method(meta_model(model_name), cfg))
    out = {f"paper_adapter_bytes_{model_name}_{n}": float(b) for n, b in sizes.items()}
    for other in ("hydralora", "moelora"):
        out[f"paper_adapter_bytes_ratio_{model_name}_idlora_vs_{other}"] = sizes["idlora"] / sizes[other]
    return out


def train_step_ratios(make_model: Callable[[], torch.nn.Module], idlora_cfg: dict, lora_cfg: dict, batch: dict,
                      trials: int, intervals: dict | None = None) -> dict[str, float]:
    """Step time (forward, backward, AdamW) of ID-LoRA at rank 4r over LoRA at rank r, per dropout position."""
    out = {}
    lora_step = train_step_fn(apply_method(make_model(), lora_cfg), batch)
    for position in tqdm(("input", "rows"), desc="bench: training step", unit="setting"):
        id_step = train_step_fn(apply_method(make_model(), {**idlora_cfg, "dropout_position": position}), batch)
        _record(out, intervals, f"train_step_ratio_idlora_vs_lora_{position}", trial_ratios(id_step, lora_step, trials))
    return out


def compiled_ratios(base, method_cfgs: dict[str, dict], prompt_batch: dict, trials: int, backend: str = "inductor",
                    intervals: dict | None = None) -> dict[str, float]:
    """Prompt-forward latency of each method ``torch.compile``'d over the compiled merged model: the same compiled
    module with its adapter disabled (dynamo compiles that case as its own graph; LoRA merged costs what it does).
    ``compiled_infer_time_ratio_<method>``; two warm-up pairs compile both graphs before timing."""
    out: dict[str, float] = {}
    base.eval()
    for name, cfg in tqdm(method_cfgs.items(), desc=f"bench: compiled ({backend})", unit="method"):
        model = apply_method(base, cfg)
        _randomize_adapter(model)
        model.eval()
        compiled = torch.compile(model, backend=backend, dynamic=False)

        def forward(c=compiled):
            return c(**prompt_batch)

        def forward_base(c=compiled, m=model):
            with m.disable_adapter():
                return c(**prompt_batch)

        try:
            _record(out, intervals, f"compiled_infer_time_ratio_{name}",
                    trial_ratios(forward, forward_base, trials, warmup=2))
        finally:
            torch._dynamo.reset()
            model.unload()
            if hasattr(base, "peft_config"):
                del base.peft_config
    return out


BENCH_METHODS = ("idlora", "hydralora", "moelora", "lora_unmerged", "dora_unmerged", "hydralora_official",
                 "moelora_official")
OFFICIAL = {"hydralora_official": "hydralora", "moelora_official": "moelora"}  # timed with method.impl=official


# the parts run by default: every part of BENCH_PARTS but compile and compile_decode, which run only on request
# (inductor compiles for minutes on a CPU)
DEFAULT_PARTS = ("shapes", "infer", "decode", "train", "pmrc")
COMPILE_PARTS = ("compile", "compile_decode")  # the parts that read compile_backend
# ID-LoRA against unmerged LoRA, decoding directly paired (issue 19's batch-1 comparison): at least PAIR_TRIALS
# trials, then more (up to PAIR_MAX_TRIALS) until the 95% interval is PAIR_PRECISION wide either side of the median
# (2026-12-03: 41 trials gave +-0.03 around 0.99, too wide to tell a 1-2% difference either way)
PAIR_TRIALS = 40
PAIR_PRECISION, PAIR_MAX_TRIALS = 0.015, 160
# The paper-shape panel's paired trials: at least 40, then more, up to SHAPE_MAX_TRIALS, until each ratio's interval is
# within SHAPE_PRECISION of its median (issue 19's +-0.03). Measured 2026-12-03 on this shared 2-core CPU: a trial's
# ratio varies with an SD of 0.07-0.10 and two adjacent calls' times are nearly uncorrelated (base over base: SD
# 0.065), so intervals do narrow with trials; 40 fixed trials left 5 of 12 ratios at +-0.04-0.055.
# Unmerged DoRA recomputes its weight norm per call (3x the prompt, 50x the decoding of the base): a ratio that far
# from 1 needs no narrow interval, so it gets 5 trials and no precision rule (40 of its trials would take an hour).
SHAPE_TRIALS = 40
SHAPE_TRIALS_OF = {"dora_unmerged": 5}
SHAPE_PRECISION, SHAPE_MAX_TRIALS = 0.03, 120
# the settings a part writes (kept with the part's metrics when another part is re-measured)
PART_SETTINGS = {"compile": ("compile_backend",),
                 "compile_decode": ("compile_backend", "compile_decode_trials", "compile_decode_precision"),
                 "shapes": ("paper_shapes",), "decode": ("decode_trials", "decode_precision")}


def _read_json(path) -> dict | None:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def merge_parts(old: dict | None, new: dict) -> dict:
    """A run of some parts (``--parts pmrc``) keeps the other parts' metrics of the file it replaces, when that file
    measured the same model in the same mode; ``parts`` records each part's provenance (date, threads, ...)."""
    if not old or old.get("model") != new["model"] or old.get("quick") != new["quick"]:
        return new
    kept = [p for p in BENCH_PARTS if p not in new["parts"]]
    # a file written before parts were recorded measured infer, train and pmrc
    old_parts = old.get("parts") or {p: old.get("provenance", {}) for p in ("infer", "train", "pmrc")}
    merged = {}
    for field in ("metrics", "intervals", "samples"):
        merged[field] = {k: v for k, v in (old.get(field) or {}).items() if metric_part(k) in kept}
        merged[field].update(new.get(field) or {})
    parts = {p: old_parts[p] for p in kept if p in old_parts}
    parts.update(new["parts"])
    out = {**new, "metrics": merged["metrics"], "parts": {p: parts[p] for p in BENCH_PARTS if p in parts}}
    for part, keys in PART_SETTINGS.items():  # a kept part keeps its settings
        for key in keys:
            value = (old.get("settings") or {}).get(key)
            if part in kept and value is not None and key not in (out.get("settings") or {}):
                out["settings"] = {**out.get("settings", {}), key: value}
    for field in ("intervals", "samples"):
        if merged[field] or field in new:
            out[field] = merged[field]
    replaced = [run_summary(old, p, old_parts[p]) for p in BENCH_PARTS if p in new["parts"] and p in old_parts]
    history = list(old.get("history") or []) + [r for r in replaced if r["metrics"]]
    if history:
        out["history"] = history
    return out


def bench_methods(scale: str) -> dict[str, dict]:
    """Figure 3's method configs at ``scale``, keyed as the metrics name them (``BENCH_METHODS``)."""
    def method_cfg(name: str) -> dict:
        cfg = OmegaConf.to_container(compose([f"scale={scale}", f"method={name}"]).method)
        if name == "idlora":
            cfg["pmrc_backend"] = "torch"  # the rows' choice does not change the cost; keep set-up fast
        return cfg

    methods = {"idlora": method_cfg("idlora"), "hydralora": method_cfg("hydralora"),
               "moelora": method_cfg("moelora"), "lora_unmerged": method_cfg("lora"),
               "dora_unmerged": method_cfg("dora")}
    methods.update({key: {**methods[m], "impl": "official"} for key, m in OFFICIAL.items()})
    assert tuple(methods) == BENCH_METHODS[:5] + tuple(OFFICIAL)
    return methods


def _train_part(model_cfg, base, methods: dict, ids: torch.Tensor, trials: int, intervals: dict, run: bool):
    """Training: ID-LoRA at rank 4r (k=4) against LoRA at rank r — the paper's pairing (128 vs 32), scaled to the
    largest pair that fits the model's smallest targeted module (k*r <= d_out). (metrics, the ranks)."""
    d_min = min(m.out_features for n, m in base.named_modules()
                if isinstance(m, torch.nn.Linear) and n.rsplit(".", 1)[-1] in methods["idlora"]["target_modules"])
    r_id = min(128, (d_min // 4) // 2 * 2)
    r_lora = max(1, r_id // 4)
    pair = {"idlora_r": r_id, "lora_r": r_lora}
    if not run:
        return {}, pair
    half = ids[: max(1, ids.shape[0] // 2)]
    labels_batch = {"input_ids": half, "attention_mask": torch.ones_like(half), "labels": half}
    results = train_step_ratios(
        lambda: load_model_and_tokenizer(model_cfg)[0],
        {**methods["idlora"], "r": r_id, "alpha": 2 * r_id, "k": 4},
        {**methods["lora_unmerged"], "r": r_lora, "alpha": 2 * r_lora}, labels_batch, max(2, trials // 2), intervals)
    results["train_step_ratio_idlora_vs_lora"] = results["train_step_ratio_idlora_vs_lora_rows"]
    return results, pair


def _shapes_part(quick: bool, trials: int, intervals: dict) -> tuple[dict, dict]:
    """The paper-shape panel (``paper_shapes``): every method at the paper's ranks on LLaMA-3-8B decoder layers,
    prompt forward, decode and extra memory, over the same layers with the adapter disabled. (metrics, settings)."""
    settings = {**paper_shapes.SETTINGS, **(paper_shapes.QUICK if quick else {})}
    base = paper_shapes.layer_model(settings)
    prompt, decode = paper_shapes.inputs(settings)
    methods = bench_methods("tiny" if quick else "paper")
    found = Found()
    trials_of = {} if quick else {name: min(n, trials) for name, n in SHAPE_TRIALS_OF.items()}
    until = {} if quick else {"precision": SHAPE_PRECISION, "max_trials": max(trials, SHAPE_MAX_TRIALS)}
    metrics = inference_ratios(base, methods, prompt, decode, settings["decode_tokens"], trials, found, trials_of,
                               **until)
    intervals.add(SHAPES, found)
    ranks = {name: {k: cfg[k] for k in ("r", "k", "n_experts", "pmrc_restarts") if k in cfg}
             for name, cfg in methods.items()}
    return ({SHAPES + k: v for k, v in metrics.items()},
            {**settings, "trials": trials, "trials_of": trials_of, **until, "methods": ranks})


def _pair_parts(parts, base, methods: dict, decode_prompt: torch.Tensor, new_tokens: int, trials: int,
                precision: float | None, backend: str | None, intervals: dict, settings: dict) -> dict:
    """ID-LoRA's batch-1 decoding over unmerged LoRA's, paired directly: eager (part ``decode``) and compiled over a
    static KV cache (part ``compile_decode``, with ``backend``); at least ``trials`` trials, then more until the
    interval is ``precision`` wide either side (up to ``PAIR_MAX_TRIALS``; quick: ``precision`` None, no more).
    Each part's trials done go to ``settings`` (``<part>_trials``), its rule to ``<part>_precision``."""
    out: dict[str, float] = {}
    for part, key, compile_backend in (("decode", PAIR_KEY, None), ("compile_decode", "compiled_" + PAIR_KEY, backend)):
        if part in parts:
            cap = max(trials, PAIR_MAX_TRIALS) if precision else trials
            ratios = decode_pair_ratios(base, methods["idlora"], methods["lora_unmerged"], decode_prompt, new_tokens,
                                        trials, compile_backend, precision, cap)
            settings[f"{part}_trials"] = len(ratios)
            settings[f"{part}_precision"] = {"min_trials": trials, "precision": precision, "max_trials": cap}
            _record(out, intervals, key, ratios)
    return out


def _print_report(report: dict, results: dict, parts, out: str) -> None:
    width = max((len(k) for k in results), default=0)
    mode = "quick" if report["quick"] else f"median of {report['trials']} trials"
    print(f"Efficiency on {report['model']} ({mode}); ratios to merged LoRA [95% interval of the median]:")
    intervals = report.get("intervals") or {}
    for k, v in results.items():
        ci = f"  [{intervals[k][0]:.4f}, {intervals[k][1]:.4f}]" if k in intervals else ""
        print(f"  {k:<{width}}  {v:,.4f}{ci}" if abs(v) < 1e6 else f"  {k:<{width}}  {v:,.0f}")
    spread = {k: s for k in results if k in intervals and (s := between_runs(report, k))}
    if spread:
        print("between runs of the current code (CODE_SINCE; the file's history and this run): mean of the medians "
              "[95% t interval], runs:")
        for k, s in spread.items():
            print(f"  {k:<{width}}  {s['mean']:.4f}  [{s['low']:.4f}, {s['high']:.4f}]  {s['runs']}")
    kept = {p: v.get("date", "an earlier run") for p, v in report["parts"].items() if p not in parts}
    if kept:
        print("kept from the file it replaces: " + ", ".join(f"{p} (measured {d})" for p, d in kept.items()))
    print(f"wrote {out}")


def run_efficiency_benchmark(model_name: str = "smollm2_135m", quick: bool = False, trials: int | None = None,
                             out: str = "results/bench/efficiency.json", parts=DEFAULT_PARTS,
                             compile_backend: str | None = None, shape_trials: int | None = None,
                             pair_trials: int | None = None) -> dict:
    """All of Figure 3's measurements for one model; writes ``out`` and prints a table. ``compile_backend``: the
    compile parts' ``torch.compile`` backend (default inductor; quick: eager, which checks the path in seconds);
    ``pair_trials``: the decoding pairs' trials (default ``PAIR_TRIALS``, at least ``trials``)."""
    unknown = set(parts) - set(BENCH_PARTS)
    if unknown:
        raise ConfigError(f"unknown benchmark part(s) {sorted(unknown)}; valid: {', '.join(BENCH_PARTS)}")
    trials = trials or (2 if quick else 7)
    seq, batch, new_tokens = (32, 2, 4) if quick else (256, 8, 64)
    model_cfg = load_group("model", model_name)
    base, tok = load_model_and_tokenizer(model_cfg)
    vocab = base.config.vocab_size
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, vocab, (batch, seq), generator=g)
    prompt_batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    decode_prompt = torch.randint(3, vocab, (1, 16), generator=g)
    methods = bench_methods("tiny" if quick else "mini")
    results: dict[str, float] = {}
    intervals = Found()
    settings = {"prompt_batch": batch, "prompt_tokens": seq, "decode_tokens": new_tokens}
    if "shapes" in parts:
        shapes, settings["paper_shapes"] = _shapes_part(quick, shape_trials or (2 if quick else SHAPE_TRIALS),
                                                        intervals)
        results.update(shapes)
    pair_trials = pair_trials or (trials if quick else max(trials, PAIR_TRIALS))
    if "infer" in parts:
        results.update(inference_ratios(base, methods, prompt_batch, decode_prompt, new_tokens, trials, intervals))
        results.update(paper_adapter_bytes())
    train, train_pair = _train_part(model_cfg, base, methods, ids, trials, intervals, "train" in parts)
    results.update(train)
    if "pmrc" in parts:
        results.update(pmrc_bench.pmrc_comparison(base, k=4, r=methods["idlora"]["r"], quick=quick))
    settings.update({"train_pair": train_pair, "methods": methods})
    if set(COMPILE_PARTS) & set(parts):
        settings["compile_backend"] = compile_backend or ("eager" if quick else "inductor")
    if "compile" in parts:
        results.update(compiled_ratios(base, methods, prompt_batch, trials, settings["compile_backend"], intervals))
    results.update(_pair_parts(parts, base, methods, decode_prompt, new_tokens, pair_trials,
                               None if quick else PAIR_PRECISION, settings.get("compile_backend"), intervals, settings))
    provenance = {"torch": torch.__version__, "threads": torch.get_num_threads(), "machine": platform.machine(),
                  "processor": platform.processor(),
                  "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
                  "date": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    report = {"model": model_name, "quick": quick, "trials": trials, "settings": settings, "metrics": results,
              "intervals": dict(intervals), "samples": intervals.samples, "provenance": provenance,
              "parts": {part: provenance for part in parts}}
    report = merge_parts(_read_json(out), report)
    atomic_write_json(out, report)
    _print_report(report, results, parts, out)
    return report
