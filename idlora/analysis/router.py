"""What ID-LoRA's router does on a trained run (``make fig_router RUN=<run id>``; issue 20 item 2, beyond the paper).

A reviewer called the router "essentially a learnable alpha". This module measures it: it loads a trained ID-LoRA
run's adapter (``runs/<run_id>/adapter``, as scoring does), feeds it the first ``prompts`` prompts of each of the
run's generation benchmarks (GSM8K, HumanEval, HEx-PHI: the prompts scoring generates from; MMLU and CQA are scored
by lm-eval's log-likelihoods and are left out), one prompt at a time, and records the router's weights
``alpha`` (k per token) of every adapted layer at every prompt token. ``alpha`` is read by a forward hook that calls
the layer's own ``frozen_projections`` and ``route`` on the layer's input: the layer's computation is not changed.

Per adapted layer, over all N tokens of S prompts (``alpha_st``: token t of prompt s, a k-vector):

- ``entropy_mean``: mean over tokens of ``H(alpha) = -sum_i alpha_i log alpha_i`` (nats; 0 log 0 = 0), and
  ``entropy_norm = entropy_mean / log k`` (1: uniform, 0: one cluster). Only where ``alpha`` is a distribution
  (``router=text`` gives raw scores: ``null``).
- ``argmax_share[i]``: the share of tokens whose largest ``alpha_i`` is cluster i.
- ``alpha_mean[i]``: the mean weight of cluster i.
- the variance of ``alpha`` (summed over the k clusters) split by the law of total variance:
  ``within_var = (1/N) sum_s sum_t |alpha_st - mean_s|^2`` (between the tokens of one sequence),
  ``between_var = (1/N) sum_s T_s |mean_s - mean|^2`` (between the sequences' means), ``total_var`` their sum, and
  ``within_share = within_var / total_var``.

This stage writes ``results/router/<run_id>.json``; ``idlora.reports.router`` draws
``results/figures/fig_router.png`` from that file alone.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import torch
from omegaconf import OmegaConf

from ..data import build_prompt
from ..eval import BENCHMARKS, get_benchmark
from ..eval.evaluate import find_run, load_trained
from ..errors import ConfigError
from ..files import atomic_write_json
from ..reports.router import plot
from ..tuners.idlora.layer import IDLoRALayer

DEFAULT_PROMPTS = 16
PROBABILITY_TOL = 1e-4  # alpha counts as a distribution when every entry >= -tol and each row sums to 1 +- tol


def layer_statistics(alphas: list[torch.Tensor]) -> dict:
    """The statistics above for one layer; ``alphas``: one ``(T_s, k)`` tensor per sequence."""
    if not alphas or any(a.ndim != 2 or a.shape[0] == 0 for a in alphas):
        raise ValueError("router statistics need at least one sequence of (tokens, k) weights")
    seqs = [a.double() for a in alphas]
    flat = torch.cat(seqs)  # (N, k)
    n, k = flat.shape
    is_distribution = bool((flat >= -PROBABILITY_TOL).all()) and bool(
        ((flat.sum(-1) - 1).abs() <= PROBABILITY_TOL).all())
    entropy = None
    if is_distribution:
        p = flat.clamp_min(0)
        entropy = float((-torch.xlogy(p, p).sum(-1)).mean())
    mean = flat.mean(0)
    within = sum(float(((a - a.mean(0)) ** 2).sum()) for a in seqs) / n
    between = sum(a.shape[0] * float(((a.mean(0) - mean) ** 2).sum()) for a in seqs) / n
    total = float(((flat - mean) ** 2).sum()) / n
    share = torch.bincount(flat.argmax(-1), minlength=k).double() / n
    return {"tokens": n, "sequences": len(seqs), "k": k, "is_distribution": is_distribution,
            "entropy_mean": entropy,
            "entropy_norm": None if entropy is None or k == 1 else entropy / math.log(k),
            "argmax_share": share.tolist(), "alpha_mean": mean.tolist(),
            "within_var": within, "between_var": between, "total_var": total,
            "within_share": within / total if total > 0 else None}


def adapted_layers(model) -> dict[str, object]:
    """``{module name: ID-LoRA layer}`` in model order, names without PEFT's ``base_model.model.`` prefix."""
    return {name.removeprefix("base_model.model."): mod for name, mod in model.named_modules()
            if isinstance(mod, IDLoRALayer)}


def collect_alphas(model, sequences: list[torch.Tensor], adapter: str = "default") -> dict[str, list[torch.Tensor]]:
    """``{module name: [(T_s, k) alpha of sequence s]}``: each sequence (a 1-D tensor of token ids) is run alone
    through ``model`` in eval mode; a forward hook on each ID-LoRA layer recomputes, from the layer's input, what the
    layer's forward computes (``alpha, _ = mix(h, W h)``: ``route`` of ``frozen_projections``)."""
    layers = adapted_layers(model)
    if not layers:
        raise ConfigError("the model has no ID-LoRA layer: fig_router reads the router of an ID-LoRA run")
    out: dict[str, list[torch.Tensor]] = {name: [] for name in layers}

    def hook_for(name):
        def hook(layer, args, output):
            h = args[0]
            alpha, _ = layer.mix(adapter, h, layer.base_layer(h))  # (1, T, k)
            out[name].append(alpha.reshape(-1, alpha.shape[-1]).float().cpu())
        return hook

    handles = [layer.register_forward_hook(hook_for(name)) for name, layer in layers.items()]
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        with torch.no_grad():
            for ids in sequences:
                model(input_ids=ids.reshape(1, -1).to(device))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return out


def evaluation_prompts(cfg, tokenizer, n: int) -> dict[str, list[str]]:
    """The first ``n`` prompts of each generation benchmark of the run, as scoring builds them."""
    prompts = {}
    for name in (b for b in cfg.eval.benchmarks if b in BENCHMARKS):
        bench = get_benchmark(name)
        examples = bench.load_examples(cfg.eval)[:n]
        prompts[name] = [build_prompt(*bench.instruction(ex), cfg.model.family, tokenizer, system=bench.system)
                         for ex in examples]
    return prompts


def _layer_position(name: str) -> tuple[int | None, str]:
    match = re.search(r"layers\.(\d+)\.", name)
    return (int(match.group(1)) if match else None), name.rsplit(".", 1)[-1]


def summarise(alphas: dict[str, list[torch.Tensor]]) -> dict:
    """Per-layer statistics and their spread over layers."""
    layers = {}
    for name, seqs in alphas.items():
        index, projection = _layer_position(name)
        layers[name] = {"layer": index, "projection": projection, **layer_statistics(seqs)}
    values = list(layers.values())

    def spread(key):
        xs = [v[key] for v in values if v[key] is not None]
        return {"mean": sum(xs) / len(xs), "min": min(xs), "max": max(xs)} if xs else None

    return {"layers": layers, "summary": {key: spread(key) for key in
                                          ("entropy_norm", "within_share", "within_var", "between_var")}
            | {"max_argmax_share": spread_max(values)}}


def spread_max(values: list[dict]) -> dict:
    """Over layers, the share of tokens that go to each layer's most chosen cluster."""
    xs = [max(v["argmax_share"]) for v in values]
    return {"mean": sum(xs) / len(xs), "min": min(xs), "max": max(xs)}


def _check(record: dict, prompts: int) -> None:
    if record.get("method") != "idlora":
        raise ConfigError(f"run {record.get('run_id')!r} is a {record.get('method')!r} run: fig_router reads the router "
                          "of an ID-LoRA run (run=<experiment>.<scale>.idlora…).")
    if not record.get("train"):
        raise ConfigError(f"run {record.get('run_id')!r} has no training recorded: train it first "
                          "(scripts/train.py or make table_router).")
    if prompts < 1:
        raise ConfigError(f"prompts={prompts}: give a positive number of prompts per benchmark.")


def analyse_run(run: str, results_dir: str | Path = "results/runs", prompts: int = DEFAULT_PROMPTS) -> dict:
    """Load the run's adapter, collect alpha on its evaluation prompts, and summarise it per layer."""
    _, record = find_run(run, str(results_dir))
    _check(record, prompts)
    cfg = OmegaConf.create(record["config"])
    if not any(b in BENCHMARKS for b in cfg.eval.benchmarks):
        raise ConfigError(f"run {record['run_id']} has no generation benchmark among {list(cfg.eval.benchmarks)}: "
                          "fig_router reads the prompts of GSM8K, HumanEval or HEx-PHI.")
    model, tokenizer = load_trained(record)
    texts = evaluation_prompts(cfg, tokenizer, prompts)
    sequences = [tokenizer(t, return_tensors="pt", add_special_tokens=False)["input_ids"][0]
                 for ts in texts.values() for t in ts]
    method = record["config"]["method"]
    return {"run_id": record["run_id"], "scale": record.get("scale"), "router": method.get("router", "linear"),
            "k": method.get("k"), "r": method.get("r"), "rank_boosting": method.get("rank_boosting"),
            "rb_parts": method.get("rb_parts", 2), "prompts": {b: len(ts) for b, ts in texts.items()},
            "skipped_benchmarks": [b for b in cfg.eval.benchmarks if b not in texts],
            **summarise(collect_alphas(model, sequences))}


def write_statistics(run: str, results_dir: str | Path = "results/runs", json_dir: str | Path = "results/router",
                     prompts: int = DEFAULT_PROMPTS) -> Path:
    """``<json_dir>/<run_id>.json``: the router statistics of one trained ID-LoRA run (``analyse_run``)."""
    data = analyse_run(run, results_dir, prompts)
    return atomic_write_json(Path(json_dir) / f"{data['run_id']}.json", data)


def make_fig_router(run: str, results_dir: str | Path = "results/runs", out_dir: str | Path = "results/figures",
                    json_dir: str | Path = "results/router", prompts: int = DEFAULT_PROMPTS) -> tuple[Path, Path]:
    """``<json_dir>/<run_id>.json`` for one trained ID-LoRA run (``write_statistics``), then
    ``<out_dir>/fig_router.png`` drawn from it (``reports.router.plot``)."""
    js = write_statistics(run, results_dir, json_dir, prompts)
    return plot(json.loads(js.read_text()), Path(out_dir) / "fig_router.png"), js
