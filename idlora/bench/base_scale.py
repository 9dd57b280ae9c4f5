"""How large the input of the trainable B is, ID-LoRA against LoRA, at initialisation (``make base_scale``).

ID-LoRA's B reads ``x = sum_i alpha_i A_i h`` (shape (..., r)), where each A_i is r rows of the pretrained W; LoRA's B
reads ``A h`` with A drawn by PEFT's kaiming-uniform init (entries of order 1/sqrt(d_in)). B is zero in both, and
under Adam a step changes B by about lr whatever the gradient's scale, so the step in the layer's output scales with
the RMS of B's input: the ratio measured here is how many times further one step at the same lr moves ID-LoRA's
output than LoRA's. Measured per adapted layer on a few fixed prompts (adapter dropout off: eval mode), with both
methods built by ``idlora.methods.apply_method`` from the scale's configs; reported per projection type (mean, min,
max over layers). Writes ``results/bench/base_scale.json``.
"""

from __future__ import annotations

import statistics
from pathlib import Path

import torch
from peft.tuners.lora import LoraLayer

from ..config import compose
from ..files import atomic_write_json
from ..methods import apply_method
from ..models import load_model_and_tokenizer
from ..tuners.idlora.layer import IDLoRALayer

# A question, a function to complete and an instruction: the three kinds of text the mini scale trains on.
PROMPTS = (
    "Question: Tom has 3 boxes with 12 apples each. He gives away 7 apples. How many apples are left?\nAnswer:",
    'def running_max(xs):\n    """Return the list of the largest value seen so far at each position."""\n',
    "Below is an instruction. Write a response that completes it.\n### Instruction:\nName three primary colours.",
)


def b_input_rms(model: torch.nn.Module, tokenizer, prompts=PROMPTS) -> dict[str, float]:
    """RMS of the input of each adapted layer's B over ``prompts`` (module name -> RMS), for ID-LoRA or PEFT's LoRA."""
    sums: dict[str, list[float]] = {}

    def record(name, value):
        sums.setdefault(name, []).append(value.float().pow(2).mean().item())

    handles = []
    for name, module in model.named_modules():
        if isinstance(module, IDLoRALayer):  # recompute B's input from the layer's input, as its forward does
            handles.append(module.register_forward_hook(
                lambda m, args, _out, _n=name: record(_n, m.mix("default", args[0], m.base_layer(args[0]))[1])))
        elif isinstance(module, LoraLayer):
            handles.append(module.lora_A["default"].register_forward_hook(
                lambda _m, _args, out, _n=name: record(_n, out)))
    model.eval()
    try:
        with torch.no_grad():
            for text in prompts:
                model(**tokenizer(text, return_tensors="pt"))
    finally:
        for handle in handles:
            handle.remove()
    return {n: statistics.fmean(v) ** 0.5 for n, v in sums.items()}


def ratios_by_projection(idlora_rms: dict[str, float], lora_rms: dict[str, float]) -> dict[str, dict]:
    """Per projection type (the module name's last part): mean, min and max over layers of ID-LoRA's RMS / LoRA's."""
    out: dict[str, list[float]] = {}
    for name in sorted(set(idlora_rms) & set(lora_rms)):  # both PeftModels name their layers alike
        out.setdefault(name.rsplit(".", 1)[-1], []).append(idlora_rms[name] / lora_rms[name])
    return {p: {"mean": statistics.fmean(v), "min": min(v), "max": max(v), "layers": len(v)} for p, v in out.items()}


def measure(scale: str = "mini", experiment: str = "multitask_llama3") -> dict:
    rms, ranks = {}, {}
    for method in ("idlora", "lora"):
        cfg = compose([f"experiment={experiment}", f"method={method}", f"scale={scale}"])
        model, tokenizer = load_model_and_tokenizer(cfg.model)
        rms[method] = b_input_rms(apply_method(model, cfg.method), tokenizer)
        ranks[method] = int(cfg.method.r)
    per = ratios_by_projection(rms["idlora"], rms["lora"])
    return {"scale": scale, "model": cfg.model.name, "experiment": experiment, "ranks": ranks,
            "prompts": len(PROMPTS), "ratio_by_projection": per,
            "mean_ratio": statistics.fmean(r["mean"] for r in per.values()),
            "idlora_rms_mean": statistics.fmean(rms["idlora"].values()),
            "lora_rms_mean": statistics.fmean(rms["lora"].values())}


def run(scale: str = "mini", out: str | Path = "results/bench/base_scale.json") -> dict:
    doc = measure(scale)
    atomic_write_json(out, doc)
    return doc
