"""Memory plan at paper scale (``make memory_plan``): ZeRO stage, gradient checkpointing and optimizer offload per
method and model, and the expected GiB per GPU, computed from the real adapters on meta-device models.

Per GPU, for G GPUs (``gpus``), P_t trainable and P_f frozen parameters of the adapted model (exact counts of the
method's PEFT adapter instantiated on ``configs/hf/<model>``, as Table 6 counts them):

* **Model states**, as DeepSpeed's own estimators count them (called, not copied:
  ``stage_1_and_2.estimate_zero2_model_states_mem_needs`` and ``stage3.estimate_zero3_model_states_mem_needs``),
  applied to the trainable parameters, plus the frozen base as bf16 weights only:
  ZeRO-2: ``2 P_f + [2 P_t + 18 P_t / G]`` (no offload) or ``2 P_f + [2 P_t]`` (optimizer on the CPU);
  ZeRO-3: ``2 P_f / G + [4 L + 18 P_t / G]`` or ``2 P_f / G + [4 L + 2 P_t / G]``, L the largest layer's
  parameters (DeepSpeed's gathered-layer term), plus the model's buffers. 18 = 2 (bf16 grads) + 4 (fp32 grads) +
  4 (fp32 master weights) + 8 (Adam moments). The stage is the one ``idlora.runs.launch`` runs: ZeRO-3 for ``fft``,
  ZeRO-2 for the adapters, plain data parallel for LoRA-FA (stage 0: ``2 P_f + 20 P_t``, fp32 weights, grads, DDP's
  gradient buckets and Adam's moments on every GPU; no offload rung).
* **Activations** of one micro-batch of T = micro_batch_size x max_length tokens (every sequence padded to
  max_length: the worst case). Per decoder layer the bytes autograd saves are *measured*, not typed: decoder layer 0
  of the meta-device model, cast to bf16 (as DeepSpeed's bf16 mode casts every parameter), with the method's real
  adapter and its dropout, runs forward under ``saved_tensors_hooks`` at two token counts, and every saved tensor
  that is not a parameter or buffer is summed once per storage; this gives ``a`` bytes per token and ``c`` bytes
  per layer independent of T (DoRA's weight-norm terms): ``layer(T) = a T + c``. The attention core is counted as
  the fused SDPA kernels (flash / memory-efficient) save it — q, and k, v repeated to every head (HF repeats them
  when a padding mask is present), the output and an fp32 log-sum-exp per head — with no s x s matrix. The head
  ``head(T)`` is measured the same way (final norm, lm_head and HF's causal-LM loss, which upcasts the logits),
  plus the bf16 logits and their fp32 copy alive while the loss's log-softmax runs: ``T V (2 + 4)`` bytes on top
  of the saved fp32 log-probabilities (``4 T V``), V the vocabulary (128,256 for LLaMA-3, 32,000 for Mistral).
  Without checkpointing: ``N_layers layer(T) + head(T)``. With HF's per-layer gradient checkpointing:
  ``N_layers 2 h T`` (each layer's bf16 input) ``+ layer(T)`` (one layer recomputed in backward) ``+ head(T)``.
  For full fine-tuning of a LLaMA layer the measurement equals the hand count a = 24 h + 8 f + 4 heads + 8 bytes per
  token (h, f the hidden and MLP widths: per RMSNorm its fp32 input, fp32 rsqrt, bf16 normalised input and the
  projections' bf16 input; q, k, v, output of the attention; the MLP's gate, SiLU, up and down inputs), tested on
  a tiny config; for LLaMA-3-8B that is 26.0 GiB over 32 layers at 4 x 1024 tokens (the usual estimate: ~25 GiB).

Not counted (what the margin, ``fraction`` of the GPU's memory, default 90%, is for): the CUDA context and kernels'
workspaces, allocator fragmentation, DeepSpeed's communication buckets, transient gradients of activations in
backward. A method gets the cheapest setting whose total fits: no checkpointing, then checkpointing, then
checkpointing with the optimizer offloaded to the CPU (``offload_optimizer``; the CPU memory it needs is reported,
from the same estimators).
"""

from __future__ import annotations

import json
import time
import weakref
from dataclasses import dataclass
from unittest import mock

import torch
import transformers
from omegaconf import OmegaConf
from peft.tuners.vblora.layer import VBLoRALayer
from torch.autograd.graph import saved_tensors_hooks
from tqdm.auto import tqdm
from transformers import AttentionInterface

from ..config import compose, load_group
from ..errors import ConfigError
from ..files import atomic_write_json, atomic_write_text
from ..methods import LABELS, TABLE_ORDER, apply_method, count_parameters
from ..models.meta import HF_CONFIG_DIR, meta_model
from ..results import git_commit
from ..runs.launch import accelerate_config

GIB = 2**30
PAPER_MODELS = ("llama3_8b", "mistral_7b", "llama32_3b")
METHOD_ORDER = TABLE_ORDER
# (gradient checkpointing, optimizer offload), cheapest in run time first.
LADDER = ((False, False), (True, False), (True, True))
ATTN_NAME = "idlora_fused_sdpa_meta"


def zero_stage(method: str) -> int:
    """The ZeRO stage ``idlora.runs.launch`` runs a method with: 3 for fft (configs/accelerate/zero3.yaml), 0 for
    plain data parallel (LoRA-FA, ddp.yaml: its optimizer steps whole tensors), 2 for every other adapter."""
    return {"zero3": 3, "ddp": 0}.get(accelerate_config(method).rsplit("/", 1)[-1].split(".")[0], 2)


@dataclass(frozen=True)
class Counts:
    trainable: int
    frozen: int
    buffer_bytes: int
    largest_layer: int  # parameters of the largest module (its own, not recursive): DeepSpeed's ZeRO-3 term


def parameter_counts(model: torch.nn.Module) -> Counts:
    """Exact counts of a (meta-device) model; tied weights once. ``largest_layer`` as DeepSpeed's
    ``stage3.model_to_params`` computes it (it cannot be called on meta tensors: it dedupes by data_ptr)."""
    trainable, total = count_parameters(model)
    largest = max(sum(p.numel() for p in m.parameters(recurse=False)) for m in model.modules())
    buffers = sum(b.numel() * b.element_size() for b in model.buffers())
    return Counts(trainable, total - trainable, buffers, largest)


def model_states_bytes(c: Counts, stage: int, gpus: int, offload: bool) -> tuple[int, int]:
    """(GPU bytes, CPU bytes) per GPU of weights, gradients and optimizer states (see the module docstring)."""
    try:  # deepspeed: an optional extra (pip install -e '.[deepspeed]'), only for its estimators
        from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs
        from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs
    except ImportError:
        raise ConfigError("the memory plan calls DeepSpeed's estimators: pip install -e '.[deepspeed]'") from None
    if stage == 0:  # data parallel: every GPU holds fp32 weights, grads, DDP's gradient buckets and Adam's moments
        if offload:
            raise ConfigError("plain data parallel (ZeRO stage 0) has no optimizer offload; use stage 2 or 3")
        return 2 * c.frozen + 20 * c.trainable + c.buffer_bytes, 0
    if stage == 2:
        cpu, gpu = estimate_zero2_model_states_mem_needs(c.trainable, num_gpus_per_node=gpus, cpu_offload=offload)
        return gpu + 2 * c.frozen + c.buffer_bytes, cpu
    if stage == 3:
        cpu, gpu, _ = estimate_zero3_model_states_mem_needs(c.trainable, c.largest_layer, num_gpus_per_node=gpus,
                                                             cpu_offload=offload, cpu_offload_params=False)
        return gpu + (2 * c.frozen) // gpus + c.buffer_bytes, cpu
    raise ConfigError(f"ZeRO stage {stage} is not planned; use 2 or 3")


class _FusedAttention(torch.autograd.Function):
    """What SDPA's fused kernels save for backward (q, k, v, out, fp32 log-sum-exp), without computing anything."""

    @staticmethod
    def forward(ctx, q, k, v):
        out = torch.empty_like(q)
        lse = q.new_empty(q.shape[:-1], dtype=torch.float32)
        ctx.save_for_backward(q, k, v, out, lse)
        return out

    @staticmethod
    def backward(ctx, grad):  # pragma: no cover - the plan never runs backward
        raise NotImplementedError("the memory plan only counts what forward saves")


def _fused_attention(module, query, key, value, attention_mask=None, **kwargs):
    reps = query.shape[1] // key.shape[1]  # GQA: HF repeats k, v to every head when a padding mask is present
    key, value = (t.repeat_interleave(reps, dim=1) for t in (key, value))
    return _FusedAttention.apply(query, key, value).transpose(1, 2).contiguous(), None


def _register_attention() -> None:
    AttentionInterface.register(ATTN_NAME, _fused_attention)


def _fused_dropout(input, p=0.5, training=True, inplace=False):
    """Dropout as CUDA runs it (``native_dropout``: a bool mask saved), not as the CPU/meta path (a mask in the
    input's dtype)."""
    if not training or p == 0:
        return input
    return torch.native_dropout(input, p, True)[0]


def _saved_bytes(fn, exclude: set[int]) -> int:
    """Bytes of the distinct storages autograd still holds for backward when ``fn`` returns, outside ``exclude``.

    Tensors saved by a part of the graph that is dropped during ``fn`` (e.g. DoRA's detached weight norm) are
    freed on the GPU too and are not counted: only those still alive (weakly referenced) at the end are."""
    refs = []

    def pack(t):
        refs.append(weakref.ref(t))
        return t

    with saved_tensors_hooks(pack, lambda t: t), mock.patch("torch.nn.functional.dropout", _fused_dropout):
        out = fn()
    alive = [t for t in (r() for r in refs) if t is not None]
    sizes = {t.untyped_storage()._cdata: t.untyped_storage().nbytes() for t in alive}
    del out, alive
    return sum(n for key, n in sizes.items() if key not in exclude)


@dataclass(frozen=True)
class Profile:
    """What one (model, method) needs: its parameter counts and its activation bytes (see ``activation_bytes``)."""
    counts: Counts
    layer_per_token: float  # a: bytes saved per token by one decoder layer
    layer_fixed: float      # c: bytes saved per layer whatever T is
    head_per_token: float   # final norm + lm_head + loss, saved and transient
    n_layers: int
    hidden: int


def adapted_meta_model(model_name: str, method_cfg: dict, config_dir=None) -> torch.nn.Module:
    """The model of ``configs/hf/<model_name>`` (or ``config_dir/<model_name>``) on the meta device with the method
    applied, in bf16."""
    with torch.device("meta"):
        model = apply_method(meta_model(model_name, config_dir or HF_CONFIG_DIR), method_cfg)
    return model.to(torch.bfloat16)


def _module(model: torch.nn.Module, suffix: str) -> torch.nn.Module:
    found = [m for n, m in model.named_modules() if n == suffix or n.endswith("." + suffix)]
    if not found:
        raise ConfigError(f"model has no module named *.{suffix}: the memory plan measures LLaMA-style models only")
    return found[0]


def _layer_saved(model, tokens: int, exclude: set[int]) -> int:
    config = model.config
    layer, rotary = _module(model, "layers.0"), _module(model, "rotary_emb")
    x = torch.empty(1, tokens, config.hidden_size, device="meta", dtype=torch.bfloat16, requires_grad=True)
    pos = torch.arange(tokens, device="meta")[None]
    with torch.no_grad():
        pe = rotary(x, pos)  # cos, sin: computed once per forward and shared by every layer
    exclude = exclude | {t.untyped_storage()._cdata for t in pe}
    return _saved_bytes(lambda: layer(x, attention_mask=None, position_ids=pos, position_embeddings=pe), exclude)


def _head_saved(model, tokens: int, exclude: set[int]) -> int:
    config = model.config
    norm, lm_head = _module(model, "model.norm"), _module(model, "lm_head")
    x = torch.empty(1, tokens, config.hidden_size, device="meta", dtype=torch.bfloat16, requires_grad=True)
    labels = torch.zeros(1, tokens, dtype=torch.long, device="meta")
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return _saved_bytes(lambda: base.loss_function(lm_head(norm(x)), labels, config.vocab_size), exclude)


def profile(model_name: str, method_cfg: dict, tokens: tuple[int, int] = (16, 32), config_dir=None) -> Profile:
    """Counts and activation bytes of ``method_cfg`` on ``model_name``, measured on meta tensors (no memory)."""
    _register_attention()
    model = adapted_meta_model(model_name, method_cfg, config_dir)
    config = model.config
    config._attn_implementation = ATTN_NAME
    model.train()
    _skip_vblora_inf_check(model)
    exclude = {t.untyped_storage()._cdata for t in list(model.parameters()) + list(model.buffers())}
    t1, t2 = tokens
    b1, b2 = (_layer_saved(model, t, exclude) for t in tokens)
    per_token = (b2 - b1) / (t2 - t1)
    h1, h2 = (_head_saved(model, t, exclude) for t in tokens)
    head = (h2 - h1) / (t2 - t1) + 6 * config.vocab_size  # + bf16 logits and their fp32 copy (transient)
    return Profile(parameter_counts(model), per_token, b1 - per_token * t1, head, config.num_hidden_layers,
                   config.hidden_size)


def _skip_vblora_inf_check(model) -> None:
    """PEFT's VB-LoRA layers test their logits for inf when training (a ``Tensor.item``, impossible on meta tensors):
    clear those layers' own training flag, which only that test reads; their dropout modules still train."""
    for module in model.modules():
        if isinstance(module, VBLoRALayer):
            module.training = False


def activation_bytes(p: Profile, tokens: int, checkpointing: bool) -> float:
    """Activation bytes of one micro-batch of ``tokens`` tokens (formulas in the module docstring)."""
    layer = p.layer_per_token * tokens + p.layer_fixed
    if checkpointing:
        return p.n_layers * 2 * p.hidden * tokens + layer + p.head_per_token * tokens
    return p.n_layers * layer + p.head_per_token * tokens


def method_config(method: str) -> dict:
    """The method's config at paper scale (ranks of Tables 1-3: ID-LoRA r=128 k=4, LoRA/DoRA/LoRI r=32, ...)."""
    return OmegaConf.to_container(compose(["scale=paper", f"method={method}"]).method)


def plan_one(p: Profile, method: str, gpus: int, budget: float, tokens: int) -> dict:
    """Every rung of the ladder (GPU and CPU bytes) and the first whose total fits in ``budget`` bytes."""
    stage, rungs = zero_stage(method), []
    for ckpt, offload in LADDER:
        if offload and stage == 0:  # no offload without DeepSpeed
            continue
        states, cpu = model_states_bytes(p.counts, stage, gpus, offload)
        acts = activation_bytes(p, tokens, ckpt)
        rungs.append({"gradient_checkpointing": ckpt, "optimizer_offload": offload, "model_states_gib": states / GIB,
                      "activations_gib": acts / GIB, "total_gib": (states + acts) / GIB,
                      "cpu_gib": cpu / GIB if offload else 0.0, "fits": states + acts <= budget})
    chosen = next((r for r in rungs if r["fits"]), None)
    return {"zero_stage": stage, "trainable": p.counts.trainable, "frozen": p.counts.frozen,
            "layer_bytes_per_token": p.layer_per_token, "layer_bytes_fixed": p.layer_fixed,
            "head_bytes_per_token": p.head_per_token, "settings": rungs, "chosen": chosen}


def build_plan(models=PAPER_MODELS, methods=METHOD_ORDER, gpus: int = 2, gpu_gib: float = 80.0,
               fraction: float = 0.9, micro_batch_size: int | None = None, max_length: int | None = None) -> dict:
    """The plan for every (model, method): see the module docstring. Batch shape defaults to scale=paper's."""
    scale = load_group("scale", "paper")
    mbs, length = micro_batch_size or int(scale.micro_batch_size), max_length or int(scale.max_length)
    if gpus < 1 or not 0 < fraction <= 1 or gpu_gib <= 0:
        raise ConfigError(f"gpus={gpus}, gpu_gib={gpu_gib}, fraction={fraction}: need gpus >= 1, gpu_gib > 0 and "
                          "0 < fraction <= 1 (e.g. gpus=2 gpu_gib=80 fraction=0.9)")
    budget = fraction * gpu_gib * GIB
    out = {}
    pairs = [(m, meth) for m in models for meth in methods]
    for model, method in tqdm(pairs, desc="memory plan", unit="run"):
        out.setdefault(model, {})[method] = plan_one(profile(model, method_config(method)), method, gpus, budget,
                                                     mbs * length)
    settings = {"gpus": gpus, "gpu_gib": gpu_gib, "fraction": fraction, "budget_gib": budget / GIB,
                "micro_batch_size": mbs, "max_length": length, "tokens_per_micro_batch": mbs * length}
    return {"settings": settings, "models": out, "scale_mapping": scale_mapping(out, methods)}


def scale_mapping(models: dict, methods=METHOD_ORDER) -> dict:
    """What ``configs/scale/paper.yaml`` must say: per switch, the methods that need it on any of the models
    (a method's choice cannot depend on the model there), the rest ``default: false``."""
    out = {}
    for key in ("gradient_checkpointing", "optimizer_offload"):
        need = [m for m in methods if any((plan[m]["chosen"] or {key: True})[key] for plan in models.values())]
        out[key] = {**{m: True for m in need}, "default": False}
    return out


def resolve_switch(mapping, method: str) -> bool:
    """A per-method switch of a scale config (``{fft: true, default: false}``) for one method."""
    mapping = dict(mapping or {})
    return bool(mapping.get(method, mapping.get("default", False)))


def _gib(x: float) -> str:
    return f"{x:.1f}"


def markdown(plan: dict) -> str:
    """The README's table: the chosen setting and its GiB per GPU, beside the totals of the other rungs."""
    s = plan["settings"]
    lines = [f"Memory plan: {s['gpus']} GPUs x {s['gpu_gib']:g} GiB, budget {s['fraction']:.0%} = "
             f"{s['budget_gib']:.1f} GiB per GPU; micro-batch {s['micro_batch_size']} x {s['max_length']} tokens "
             "(`make memory_plan`, idlora/memory_plan.py). GiB per GPU.", "",
             "| model | method | trainable | ZeRO | grad. ckpt | opt. offload | model states | activations | total "
             "| total: none / ckpt / ckpt+offload | CPU for offload |", "|" + "---|" * 11]
    for model, methods in plan["models"].items():
        for method, x in methods.items():
            c = x["chosen"]
            alts = " / ".join([_gib(r["total_gib"]) for r in x["settings"]] + ["—"] * (3 - len(x["settings"])))
            if c is None:
                lines.append(f"| {model} | {LABELS.get(method, method)} | {x['trainable']:,} | {x['zero_stage']} "
                             f"| — | — | — | — | does not fit | {alts} | — |")
                continue
            yes = {True: "yes", False: "no"}
            lines.append(f"| {model} | {LABELS.get(method, method)} | {x['trainable']:,} | {x['zero_stage']} | "
                         f"{yes[c['gradient_checkpointing']]} | {yes[c['optimizer_offload']]} | "
                         f"{_gib(c['model_states_gib'])} | {_gib(c['activations_gib'])} | **{_gib(c['total_gib'])}** "
                         f"| {alts} | {_gib(c['cpu_gib']) if c['optimizer_offload'] else '—'} |")
    return "\n".join(lines) + "\n"


def write(plan: dict, json_path: str = "results/bench/memory_plan.json",
          md_path: str = "results/tables/memory_plan.md") -> tuple[str, str]:
    import deepspeed  # an optional extra (pip install -e '.[deepspeed]'): its version, in the provenance

    plan = {**plan, "provenance": {"deepspeed": deepspeed.__version__, "transformers": transformers.__version__,
                                   "torch": torch.__version__, "commit": git_commit(),
                                   "date": time.strftime("%Y-%m-%dT%H:%M:%S%z")}}
    atomic_write_json(json_path, plan)
    atomic_write_text(md_path, markdown(plan))
    return json_path, md_path
