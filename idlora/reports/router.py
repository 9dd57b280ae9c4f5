"""Figure ``fig_router`` (``make fig_router RUN=<run id>``): what ID-LoRA's router does on a trained run, drawn from
the statistics file ``results/router/<run_id>.json`` that the analysis stage ``idlora.analysis.router`` writes (its
docstring defines each statistic)."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import ConfigError
from .plotting import pyplot, save


def plot(data: dict, out: str | Path) -> Path:
    """Three panels over the adapted layers (model order): normalised entropy, argmax shares, variance split."""
    plt = pyplot()
    layers = list(data["layers"].values())
    xs = list(range(len(layers)))
    fig, (ax_h, ax_s, ax_v) = plt.subplots(3, 1, figsize=(11, 8.5), sharex=True)
    for projection in dict.fromkeys(v["projection"] for v in layers):
        pts = [(i, v["entropy_norm"]) for i, v in enumerate(layers)
               if v["projection"] == projection and v["entropy_norm"] is not None]
        if pts:
            ax_h.plot(*zip(*pts), "o", ms=3, label=projection)
    if any(v["entropy_norm"] is not None for v in layers):
        ax_h.axhline(1.0, color="gray", lw=0.8, ls=":")
        ax_h.legend(fontsize=6, ncol=7, loc="lower right")
    else:
        ax_h.text(0.5, 0.5, f"alpha is not a distribution (router={data['router']}): no entropy",
                  transform=ax_h.transAxes, ha="center")
    ax_h.set_ylabel("H(α) / log k")
    bottom = [0.0] * len(layers)
    for i in range(data["k"]):
        share = [v["argmax_share"][i] for v in layers]
        ax_s.bar(xs, share, bottom=bottom, width=1.0, label=f"cluster {i + 1}")
        bottom = [b + s for b, s in zip(bottom, share)]
    ax_s.set_ylabel("share of tokens\nwith argmax α_i = i")
    ax_s.legend(fontsize=6, ncol=data["k"], loc="lower right")
    ax_v.plot(xs, [v["within_var"] for v in layers], lw=1, label="within a sequence (between its tokens)")
    ax_v.plot(xs, [v["between_var"] for v in layers], lw=1, label="between sequences' means")
    if all(v["within_var"] > 0 and v["between_var"] > 0 for v in layers):
        ax_v.set_yscale("log")
    ax_v.set_ylabel("variance of α\n(summed over clusters)")
    ax_v.legend(fontsize=7)
    starts = [(i, v["layer"]) for i, v in enumerate(layers) if v["layer"] is not None
              and (i == 0 or layers[i - 1]["layer"] != v["layer"])]
    ax_v.set_xticks([i for i, _ in starts], [str(n) for _, n in starts], fontsize=6)
    ax_v.set_xlabel("adapted module, in model order (tick: first module of decoder layer N)")
    n_prompts = sum(data["prompts"].values())
    fig.suptitle(f"ID-LoRA router on {data['run_id']} (router={data['router']}, k={data['k']}): "
                 f"{n_prompts} evaluation prompts ({', '.join(f'{b} {n}' for b, n in data['prompts'].items())}), "
                 f"{layers[0]['tokens']} tokens", fontsize=9)
    fig.tight_layout()
    return save(fig, Path(out))


def fig_router(stats: str | Path, out: str | Path) -> Path:
    """``out`` (a PNG) from a router statistics file (``results/router/<run_id>.json``)."""
    path = Path(stats)
    if not path.exists():
        raise ConfigError(f"no router statistics at {path}; compute them with `python scripts/make_figure.py "
                          "fig=fig_router run=<run id>` (make fig_router RUN=<run id>).")
    return plot(json.loads(path.read_text()), out)
