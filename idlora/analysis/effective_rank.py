"""Effective rank of the trained update ΔW (``make fig_rank``; a reviewer's question, beyond the paper).

The paper claims ID-LoRA reaches rank up to k·r with fewer parameters. After training, for one layer, this module
takes the LoRA run at r=32 and the ID-LoRA run at r=128 of Table 7 (the paper's parameter-parity pair; the scale
maps the ranks) and computes, in float64:

- LoRA: ``ΔW = (alpha/r) B A``, one matrix.
- ID-LoRA: the update of a token is ``Σ_i α_i(h) ΔW_i h`` with ``ΔW_i = (alpha/r) [B A_i^1 ; B A_i^2]`` (Rank
  Boosting; ``B A_i`` without it). No single matrix describes it, so three views:
  ``uniform``: ``mean_i ΔW_i`` (the router at 1/k each); ``outputs``: ``[ΔW_1 | … | ΔW_k]``, whose column space
  holds every update the layer can add to its output; ``inputs``: ``[ΔW_1 ; … ; ΔW_k]``, whose row space holds
  every input direction the update reads.

The numerical rank counts singular values above ``tol · σ_max``. Note what the algebra already bounds: every
``ΔW_i`` maps into the column space of ``blockdiag(B, B)``, so the ``outputs`` rank is at most r, whatever k is;
the ``inputs`` rank can reach k·r (the union of the row spaces of the A_i).

This stage writes ``results/figures/fig_rank.json``; ``idlora.reports.effective_rank`` draws ``fig_rank.png`` from it.
"""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import OmegaConf

from ..config import compose
from ..errors import ConfigError
from ..eval.evaluate import load_trained
from ..experiments import experiment_list
from ..files import atomic_write_json
from ..reports.effective_rank import fig_rank
from ..results import check_record, record_path

PAIR = ("lora_r32", "idlora_r128")  # Table 7 rows
TOL = 1e-6


def _singular_values(M: torch.Tensor) -> list[float]:
    return torch.linalg.svdvals(M.double()).tolist()


def numerical_rank(s: list[float], tol: float = TOL) -> int:
    return sum(v > tol * s[0] for v in s) if s and s[0] > 0 else 0


def lora_delta(layer, adapter: str = "default") -> torch.Tensor:
    """(alpha/r) B A of a peft LoRA layer: (d_out, d_in)."""
    A = layer.lora_A[adapter].weight.double()  # (r, d_in)
    B = layer.lora_B[adapter].weight.double()  # (d_out, r)
    return layer.scaling[adapter] * B @ A


def idlora_deltas(layer, adapter: str = "default") -> list[torch.Tensor]:
    """ΔW_i for each cluster of an ID-LoRA layer: k matrices (d_out, d_in)."""
    W = layer.get_base_layer().weight.double()
    if adapter in layer.idlora_A:
        bases = list(layer.idlora_A[adapter].double())
    else:
        bases = [W[idx] for idx in layer.idlora_index[adapter]]  # A_i = W[S_i, :]
    B = layer.idlora_B[adapter].weight.double()
    s = layer.scaling[adapter]
    m = layer.rb_parts[adapter]  # the Rank Boosting factor: 2 (eq. 4), 1 without Rank Boosting
    out = []
    for A in bases:  # (r, d_in)
        if m > 1:
            out.append(s * torch.cat([B @ part for part in A.chunk(m)]))  # [B A_i^1 ; ... ; B A_i^m]
        else:
            out.append(s * B @ A)
    return out


def spectra(lora_layer, idlora_layer) -> dict:
    deltas = idlora_deltas(idlora_layer)
    views = {"lora": lora_delta(lora_layer), "idlora_uniform": sum(deltas) / len(deltas),
             "idlora_outputs": torch.cat(deltas, dim=1), "idlora_inputs": torch.cat(deltas, dim=0)}
    out = {}
    for name, M in views.items():
        s = _singular_values(M)
        out[name] = {"shape": list(M.shape), "rank": numerical_rank(s), "singular_values": s[:1024]}
    out["lora"]["r"] = lora_layer.r["default"]
    out["idlora"] = {"r": idlora_layer.r["default"], "k": idlora_layer.k["default"],
                     "rank_boosting": bool(idlora_layer.rank_boosting["default"])}
    return out


def _module(model, name: str):
    for key, mod in model.named_modules():
        if key.endswith(name) and hasattr(mod, "get_base_layer"):
            return mod
    raise ConfigError(f"no adapted module named {name!r}; pass module=model.layers.<i>.<...> of a targeted layer.")


def analyse(scale: str = "mini", results_dir: str | Path = "results/runs", module: str | None = None) -> dict:
    """Load Table 7's LoRA r=32 and ID-LoRA r=128 runs (their adapters) and compute the spectra of one layer."""
    specs = {r.row: r for r in experiment_list("table7")["runs"]}
    layers, runs = {}, {}
    for row in PAIR:
        cfg = compose(specs[row].at(scale).args())
        record, why = check_record(record_path(results_dir, cfg.run_id), OmegaConf.to_container(cfg, resolve=True))
        if record is None:
            raise ConfigError(f"fig_rank needs Table 7's run {cfg.run_id} ({why}); run `make table7 SCALE={scale}`.")
        model, _ = load_trained(record)
        n_layers = model.config.num_hidden_layers
        module = module or f"layers.{n_layers // 2}.mlp.up_proj"
        layers[row], runs[row] = _module(model, module), cfg.run_id
    result = spectra(layers[PAIR[0]], layers[PAIR[1]])
    return {"scale": scale, "module": module, "runs": runs, "tol": TOL, **result}


def write_spectra(scale: str = "mini", results_dir: str | Path = "results/runs", out: str | Path =
                  "results/figures/fig_rank.json", module: str | None = None) -> Path:
    """The spectra of one layer (``analyse``) as a JSON file, which ``reports.effective_rank`` draws."""
    return atomic_write_json(Path(out), analyse(scale, results_dir, module))


def make_fig_rank(scale: str = "mini", results_dir: str = "results/runs", out_dir: str = "results/figures",
                  module: str | None = None) -> tuple[Path, Path]:
    """``<out_dir>/fig_rank.json`` (``write_spectra``), then ``<out_dir>/fig_rank.png`` drawn from it."""
    js = write_spectra(scale, results_dir, Path(out_dir) / "fig_rank.json", module)
    return fig_rank(js, Path(out_dir) / "fig_rank.png"), js
