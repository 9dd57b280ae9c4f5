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
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..errors import ConfigError
from ..files import atomic_write_json

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
    from omegaconf import OmegaConf

    from ..eval.evaluate import load_trained
    from .tables.from_runs import experiment_list, load_result
    from ..config import compose

    specs = {r.row: r for r in experiment_list("table7")["runs"]}
    layers, runs = {}, {}
    for row in PAIR:
        cfg = compose(specs[row].at(scale).args())
        record, why = load_result(Path(results_dir) / f"{cfg.run_id}.json", OmegaConf.to_container(cfg, resolve=True))
        if record is None:
            raise ConfigError(f"fig_rank needs Table 7's run {cfg.run_id} ({why}); run `make table7 SCALE={scale}`.")
        model, _ = load_trained(record)
        n_layers = model.config.num_hidden_layers
        module = module or f"layers.{n_layers // 2}.mlp.up_proj"
        layers[row], runs[row] = _module(model, module), cfg.run_id
    result = spectra(layers[PAIR[0]], layers[PAIR[1]])
    return {"scale": scale, "module": module, "runs": runs, "tol": TOL, **result}


def plot(data: dict, out: str | Path) -> Path:
    from .plotting import pyplot, save

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    styles = {"lora": ("tab:blue", f"LoRA r={data['lora']['r']}: ΔW"),
              "idlora_uniform": ("tab:red", "ID-LoRA: mean_i ΔW_i (uniform router)"),
              "idlora_outputs": ("tab:orange", "ID-LoRA: [ΔW_1 | … | ΔW_k] (output space)"),
              "idlora_inputs": ("tab:purple", "ID-LoRA: [ΔW_1 ; … ; ΔW_k] (input space)")}
    for key, (color, label) in styles.items():
        s = torch.tensor(data[key]["singular_values"])
        s = s[s > 0]
        if len(s):
            ax.semilogy(range(1, len(s) + 1), (s / s[0]).tolist(), color=color,
                        label=f"{label} — rank {data[key]['rank']}")
    ax.axhline(data["tol"], color="gray", lw=0.8, ls=":")
    ax.set_ylim(data["tol"] / 10, 2)
    ax.set_xscale("log")
    ax.set_xlabel("singular value index")
    ax.set_ylabel("σ_j / σ_1")
    idl = data["idlora"]
    ax.set_title(f"Spectrum of the trained update, {data['module']} (scale {data['scale']})\n"
                 f"ID-LoRA r={idl['r']}, k={idl['k']}{', RB' if idl['rank_boosting'] else ''}; "
                 f"numerical rank: σ > {data['tol']:g}·σ_1", fontsize=9)
    ax.legend(fontsize=7)
    return save(fig, Path(out))


def make_fig_rank(scale: str = "mini", results_dir: str = "results/runs", out_dir: str = "results/figures",
                  module: str | None = None) -> tuple[Path, Path]:
    data = analyse(scale, results_dir, module)
    png = plot(data, Path(out_dir) / "fig_rank.png")
    js = atomic_write_json(Path(out_dir) / "fig_rank.json", data)
    return png, js


def summary(path: str | Path) -> str:
    d = json.loads(Path(path).read_text())
    return ", ".join(f"{k}: rank {d[k]['rank']} of {min(d[k]['shape'])}" for k in
                     ("lora", "idlora_uniform", "idlora_outputs", "idlora_inputs"))
