"""Figure ``fig_rank`` (``make fig_rank``): the spectrum of the trained update of one layer, LoRA r=32 against
ID-LoRA r=128, drawn from ``results/figures/fig_rank.json``, which the analysis stage ``idlora.analysis.effective_rank``
writes (its docstring defines the views)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from .plotting import pyplot, save


def plot(data: dict, out: str | Path) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    styles = {"lora": ("tab:blue", f"LoRA r={data['lora']['r']}: ΔW"),
              "idlora_uniform": ("tab:red", "ID-LoRA: mean_i ΔW_i (uniform router)"),
              "idlora_outputs": ("tab:orange", "ID-LoRA: [ΔW_1 | … | ΔW_k] (output space)"),
              "idlora_inputs": ("tab:purple", "ID-LoRA: [ΔW_1 ; … ; ΔW_k] (input space)")}
    for key, (color, label) in styles.items():
        s = np.asarray(data[key]["singular_values"], dtype=np.float32)  # float32, as the figure has always drawn them
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


def fig_rank(spectra: str | Path, out: str | Path) -> Path:
    """``out`` (a PNG) from a spectra file (``results/figures/fig_rank.json``)."""
    path = Path(spectra)
    if not path.exists():
        raise ConfigError(f"no spectra at {path}; compute them with `make fig_rank` (Table 7's runs first).")
    return plot(json.loads(path.read_text()), out)
