"""Figures 3 and 4 of the paper as PNGs (``make fig3``, ``make fig4``), built only from results files.

- Figure 3: inference-time overhead and extra inference memory of each adapter over merged LoRA (= the base
  model), from the efficiency benchmark's ``results/bench/efficiency.json`` (``make bench``), with the
  paper's claims of Section 5.4 beside ours.
- Figure 4: LoRA against ID-LoRA per trainable-parameter budget, one panel per benchmark, from the runs of
  Table 7 (the same results files and config checks as the table), the paper's points beside ours.
- ``fig_budget`` (ours): the training loss per step of long mini runs (``results/budget/``), with the scale's
  ``max_steps`` marked: the evidence behind the mini step budget.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import ConfigError
from ..methods import LABELS
from .plotting import pyplot as _pyplot
from .plotting import save as _save

FIGURES = ("fig3", "fig4", "fig_rank", "fig_budget", "fig_router")
FIG3_METHODS = ("lora_unmerged", "dora_unmerged", "hydralora", "moelora", "idlora")
FIG3_LABELS = {"lora_unmerged": "LoRA\n(unmerged)", "dora_unmerged": "DoRA\n(unmerged)",
               **{m: LABELS[m] for m in ("hydralora", "moelora", "idlora")}}
FIG4_PANELS = ("gsm8k", "mmlu", "cqa", "humaneval_pass@1", "humaneval_pass@5", "humaneval_pass@10")
FIG4_TITLES = {"gsm8k": "GSM8K", "mmlu": "MMLU", "cqa": "CommonsenseQA", "humaneval_pass@1": "HumanEval pass@1",
               "humaneval_pass@5": "HumanEval pass@5", "humaneval_pass@10": "HumanEval pass@10"}


def fig3_data(bench_path: str | Path) -> dict:
    """Per method: inference-time overhead (%), decode-time overhead (%), extra memory (MiB); paper claims."""
    from .tables.render import paper_numbers

    path = Path(bench_path)
    if not path.exists():
        raise ConfigError(f"no efficiency benchmark results at {path}; run `make bench` first.")
    try:
        bench = json.loads(path.read_text())
        metrics = bench["metrics"]
    except (ValueError, KeyError) as e:
        raise ConfigError(f"{path} is not an efficiency benchmark results file ({e}); rerun `make bench`.") from None
    rows = {}
    for m in FIG3_METHODS:
        infer, decode = metrics.get(f"infer_time_ratio_{m}"), metrics.get(f"decode_time_ratio_{m}")
        mem = metrics.get(f"extra_memory_{m}")
        rows[m] = {"infer_overhead_pct": None if infer is None else 100.0 * (infer - 1.0),
                   "decode_overhead_pct": None if decode is None else 100.0 * (decode - 1.0),
                   "extra_memory_mib": None if mem is None else mem / 2**20}
    claims = paper_numbers()["figure3"]["claims"]
    paper = {m: claims.get(f"{m}_time_overhead_vs_lora_pct") for m in FIG3_METHODS}
    return {"model": bench.get("model"), "quick": bench.get("quick"), "rows": rows, "paper_time_overhead_pct": paper,
            "paper_memory_claim_pct": claims.get("idlora_extra_memory_reduction_vs_moelora_and_hydralora_pct"),
            "memory_ratios": {k: v for k, v in metrics.items() if k.startswith("extra_memory_ratio")},
            "paper_shape_ratios": {k.removeprefix("paper_adapter_bytes_ratio_"): v for k, v in metrics.items()
                                   if k.startswith("paper_adapter_bytes_ratio_")}}


def fig3(bench_path: str | Path = "results/bench/efficiency.json", out: str | Path = "results/figures/fig3.png") -> Path:
    data = fig3_data(bench_path)
    plt = _pyplot()
    methods = [m for m in FIG3_METHODS if data["rows"][m]["infer_overhead_pct"] is not None]
    if not methods:
        raise ConfigError(f"{bench_path} holds no inference measurements; run `make bench` (without --parts).")
    x = range(len(methods))
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(11, 4.2))
    w = 0.27
    ours_p = [data["rows"][m]["infer_overhead_pct"] for m in methods]
    ours_d = [data["rows"][m]["decode_overhead_pct"] or 0.0 for m in methods]
    paper = [data["paper_time_overhead_pct"][m] for m in methods]
    ax_t.bar([i - w for i in x], ours_p, w, label="ours: prompt forward (8×256)", color="tab:blue")
    ax_t.bar(list(x), ours_d, w, label="ours: decoding 64 tokens", color="tab:cyan")
    ax_t.bar([i + w for i in x], [p if p is not None else 0.0 for p in paper], w, label="paper (LLaMA-3-8B, A800)",
             color="tab:gray", hatch="//")
    for i, p in zip(x, paper):
        if p is None:
            ax_t.text(i + w, 0, "n/a", ha="center", va="bottom", fontsize=7, color="gray")
    ax_t.axhline(0, color="black", lw=0.8)
    ax_t.set_xticks(list(x), [FIG3_LABELS[m] for m in methods], fontsize=8)
    ax_t.set_ylabel("inference time over merged LoRA (%)")
    ax_t.set_title("Inference time overhead")
    ax_t.legend(fontsize=7)
    mem = [data["rows"][m]["extra_memory_mib"] or 0.0 for m in methods]
    bars = ax_m.bar(list(x), mem, 0.6, color=["tab:red" if m == "idlora" else "tab:orange" for m in methods])
    ax_m.bar_label(bars, fmt="%.1f", fontsize=7)
    ax_m.set_ylim(0, 1.35 * max(mem + [1e-9]))
    ax_m.set_xticks(list(x), [FIG3_LABELS[m] for m in methods], fontsize=8)
    ax_m.set_ylabel("extra memory at inference (MiB)")
    ratios = ", ".join(f"{k.removeprefix('extra_memory_ratio_')}: {v:.2f}" for k, v in data["memory_ratios"].items())
    ax_m.set_title("Extra memory (ours)")
    shapes = ", ".join(f"{k.split('_idlora_')[-1]}: {v:.2f}" for k, v in data["paper_shape_ratios"].items())
    ax_m.text(0.02, 0.97, f"paper: ID-LoRA uses {data['paper_memory_claim_pct']}% less than\nHydraLoRA and MoELoRA"
              f"\nours, measured (ratio): {ratios}"
              + (f"\nours, adapter bytes at the paper's settings on\nLLaMA-3-8B shapes (exact): {shapes}" if shapes else ""),
              transform=ax_m.transAxes, va="top", fontsize=7)
    fig.suptitle(f"Figure 3: inference cost per method — ours on {data['model']} (CPU"
                 f"{', quick run' if data['quick'] else ''}), paper on LLaMA-3-8B", fontsize=10)
    return _save(fig, Path(out))


def fig4_data(scale: str = "mini", results_dir: str | Path = "results/runs") -> dict:
    """Series per benchmark and method: ours and the paper's (params %, value), from Table 7's runs."""
    from .tables import build_table

    table = build_table("table7", scale, str(results_dir))
    series: dict = {}
    for method in ("lora", "idlora"):
        rows = [r for r in table.rows if r.startswith(method + "_r")]
        for panel in FIG4_PANELS:
            for who in ("ours", "paper"):
                pts = []
                for r in rows:
                    x, y = table.cell(r, "params_pct"), table.cell(r, panel)
                    if x and y and x[who] is not None and y[who] is not None:
                        pts.append((float(x[who]), float(y[who]), r))
                series.setdefault(panel, {})[f"{method}_{who}"] = sorted(pts)
    return {"scale": scale, "series": series, "notes": table.notes}


def fig4(scale: str = "mini", results_dir: str | Path = "results/runs",
         out: str | Path = "results/figures/fig4.png") -> Path:
    data = fig4_data(scale, results_dir)
    if not any(pts for s in data["series"].values() for k, pts in s.items() if k.endswith("_ours")):
        raise ConfigError(f"no Table 7 runs at scale {scale} in {results_dir}; run `make table7 SCALE={scale}` first.")
    plt = _pyplot()
    from matplotlib.ticker import FuncFormatter, NullFormatter

    fig, axes = plt.subplots(2, 3, figsize=(12, 6.5))
    style = {"lora": ("tab:blue", "o", "LoRA"), "idlora": ("tab:red", "s", "ID-LoRA")}
    for ax, panel in zip(axes.flat, FIG4_PANELS):
        for method, (color, marker, label) in style.items():
            for who, ls, alpha in (("ours", "-", 1.0), ("paper", "--", 0.45)):
                pts = data["series"][panel][f"{method}_{who}"]
                if pts:
                    ax.plot([p[0] for p in pts], [p[1] for p in pts], ls, marker=marker, color=color, alpha=alpha,
                            label=f"{label} ({'ours, ' + scale if who == 'ours' else 'paper, LLaMA-3-8B'})")
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))  # 0.1, 1 — not 10^-1
        ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels (2x10^-1, 3x10^-1 …) overlapped
        ax.set_xticks([0.1, 0.2, 0.5, 1, 2])
        ax.set_title(FIG4_TITLES[panel], fontsize=9)
        ax.set_xlabel("trainable parameters (% of model)", fontsize=8)
        ax.set_ylabel("score (%)", fontsize=8)
        ax.tick_params(labelsize=7)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8)
    note = "" if scale == "paper" else f" — scale {scale}: not comparable to the paper in absolute terms"
    fig.suptitle(f"Figure 4: LoRA vs ID-LoRA per parameter budget (multi-task){note}", fontsize=10)
    fig.tight_layout(rect=(0, 0.06, 1, 0.96))
    return _save(fig, Path(out))


def budget_curves(results_dir: str | Path) -> dict[str, list[float]]:
    """{run id: training loss per step} of every results file in ``results_dir`` that recorded a loss curve."""
    curves = {}
    for path in sorted(Path(results_dir).glob("*.json")):
        if path.name.endswith(".examples.json"):
            continue
        record = json.loads(path.read_text())
        if (curve := record.get("train", {}).get("loss_curve")):
            curves[record["run_id"]] = [float(x) for x in curve]
    if not curves:
        raise ConfigError(f"no results file with a training loss curve in {results_dir}; train runs there first "
                          "(e.g. python scripts/train.py ... train.max_steps=48 results_dir=DIR).")
    return curves


def fig_budget(results_dir: str | Path, out: str | Path, scale: str = "mini") -> Path:
    """Training loss per step of long runs (``results_dir``), with the scale's step budget marked: how the mini
    scale's ``max_steps`` was chosen (where the adapters' loss has flattened)."""
    from ..config import load_group

    steps = load_group("scale", scale).get("max_steps")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for run_id, curve in budget_curves(results_dir).items():
        window = 4  # a moving mean over 4 steps: one batch of 4 is a noisy estimate
        smooth = [sum(curve[max(0, i - window + 1): i + 1]) / len(curve[max(0, i - window + 1): i + 1])
                  for i in range(len(curve))]
        line, = ax.plot(range(1, len(curve) + 1), curve, alpha=0.25)
        ax.plot(range(1, len(curve) + 1), smooth, color=line.get_color(), label=run_id)
    if steps:
        ax.axvline(steps, color="k", linestyle="--", label=f"scale {scale}: max_steps = {steps}")
    ax.set(xlabel="optimizer step (batch 4)", ylabel="training loss (response tokens)", yscale="log",
           title=f"Training loss per step (thin: per step; thick: mean of 4) — scale {scale}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, Path(out))


def make_figure(name: str, scale: str = "mini", results_dir: str = "results/runs",
                bench: str = "results/bench/efficiency.json", out_dir: str = "results/figures",
                run: str | None = None, prompts: int | None = None) -> Path:
    """``run`` and ``prompts`` (per benchmark) are fig_router's: the trained ID-LoRA run whose router it reads; its
    numbers go to ``results/router/<run_id>.json`` (beside ``out_dir``)."""
    if name not in FIGURES:
        raise ConfigError(f"unknown figure {name!r}; available: {', '.join(FIGURES)} "
                          "(make fig3, make fig4, make fig_rank, make fig_router)")
    if (run is not None or prompts is not None) and name != "fig_router":
        raise ConfigError(f"run= and prompts= are fig_router's options; {name} does not take them.")
    out = Path(out_dir) / f"{name}.png"
    if name == "fig_router":
        from .router import DEFAULT_PROMPTS, make_fig_router

        if not run:
            raise ConfigError("fig_router reads one trained ID-LoRA run: pass run=<run id>, e.g. "
                              "run=multitask_llama32.mini.idlora (make fig_router RUN=<run id>).")
        return make_fig_router(run, results_dir, out_dir, Path(out_dir).parent / "router",
                               DEFAULT_PROMPTS if prompts is None else prompts)[0]
    if name == "fig_rank":
        from .effective_rank import make_fig_rank

        return make_fig_rank(scale, results_dir, out_dir)[0]
    if name == "fig_budget":
        return fig_budget(results_dir, out, scale)
    return fig3(bench, out) if name == "fig3" else fig4(scale, results_dir, out)
