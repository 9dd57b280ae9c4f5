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

from matplotlib.ticker import FuncFormatter, MaxNLocator, MultipleLocator, NullFormatter

from ..bench_format import PAIR_KEY, SHAPES
from ..config import load_group
from ..errors import ConfigError
from ..methods import LABELS
from ..results import record_files
from .effective_rank import fig_rank
from .plotting import pyplot as _pyplot
from .plotting import save as _save
from .router import fig_router
from .tables import build_table
from .tables.render import paper_numbers

FIGURES = ("fig3", "fig4", "fig_rank", "fig_budget", "fig_router")
FIG3_METHODS = ("lora_unmerged", "dora_unmerged", "hydralora", "moelora", "idlora")
FIG3_LABELS = {"lora_unmerged": "LoRA\n(unmerged)", "dora_unmerged": "DoRA\n(unmerged)",
               **{m: LABELS[m] for m in ("hydralora", "moelora", "idlora")}}
# The same methods as their official code computes them (method.impl=official; efficiency.json's <m>_official keys,
# optional: files written before issue 19 have none). LoRA and DoRA are PEFT's own code, ours and theirs alike.
FIG3_OFFICIAL = {"hydralora": "hydralora_official", "moelora": "moelora_official"}
FIG4_PANELS = ("gsm8k", "mmlu", "cqa", "humaneval_pass@1", "humaneval_pass@5", "humaneval_pass@10")
FIG4_TITLES = {"gsm8k": "GSM8K", "mmlu": "MMLU", "cqa": "CommonsenseQA", "humaneval_pass@1": "HumanEval pass@1",
               "humaneval_pass@5": "HumanEval pass@5", "humaneval_pass@10": "HumanEval pass@10"}


def _overhead(ratio):
    return None if ratio is None else 100.0 * (ratio - 1.0)


def _fig3_row(metrics: dict, intervals: dict, m: str, prefix: str = "") -> dict:
    """One method's time overheads (%), their 95% intervals (% or None) and extra memory (MiB), from the metrics
    named ``<prefix><metric>_<m>`` (prefix ``paper_shapes_``: the paper-shape panel)."""
    row = {}
    for name, key in (("infer", f"{prefix}infer_time_ratio_{m}"), ("decode", f"{prefix}decode_time_ratio_{m}"),
                      ("compiled_infer", f"{prefix}compiled_infer_time_ratio_{m}")):
        row[f"{name}_overhead_pct"] = _overhead(metrics.get(key))
        ci = intervals.get(key)
        row[f"{name}_overhead_ci_pct"] = None if ci is None else [_overhead(v) for v in ci]
    mem = metrics.get(f"{prefix}extra_memory_{m}")
    row["extra_memory_mib"] = None if mem is None else mem / 2**20
    return row


def fig3_data(bench_path: str | Path) -> dict:
    """Per method (and per official implementation, ``FIG3_OFFICIAL``): inference-time overhead (%), decode-time
    overhead (%), compiled prompt-forward overhead (%), each with its 95% interval where the file has one (None
    otherwise), extra memory (MiB); the paper's claims. ``rows``: the benchmark's model (the mini panel);
    ``shape_rows``: the paper-shape panel (LLaMA-3-8B decoder layers, the paper's ranks), None if not measured."""
    path = Path(bench_path)
    if not path.exists():
        raise ConfigError(f"no efficiency benchmark results at {path}; run `make bench` first.")
    try:
        bench = json.loads(path.read_text())
        metrics = bench["metrics"]
        intervals = bench.get("intervals") or {}
    except (ValueError, KeyError, AttributeError) as e:
        raise ConfigError(f"{path} is not an efficiency benchmark results file ({e}); rerun `make bench`.") from None
    names = (*FIG3_METHODS, *FIG3_OFFICIAL.values())
    rows = {m: _fig3_row(metrics, intervals, m) for m in names}
    shape_rows = ({m: _fig3_row(metrics, intervals, m, SHAPES) for m in names}
                  if any(k.startswith(SHAPES) for k in metrics) else None)
    settings = bench.get("settings") or {}
    claims = paper_numbers()["figure3"]["claims"]
    paper = {m: claims.get(f"{m}_time_overhead_vs_lora_pct") for m in FIG3_METHODS}
    return {"model": bench.get("model"), "quick": bench.get("quick"), "rows": rows, "paper_time_overhead_pct": paper,
            "shape_rows": shape_rows, "shape_settings": settings.get("paper_shapes"),
            "mini_settings": {k: settings.get(k) for k in ("prompt_batch", "prompt_tokens", "decode_tokens")},
            "compile_backend": settings.get("compile_backend"),
            "decode_pairs": {mode: (metrics[key], intervals.get(key), len((bench.get("samples") or {}).get(key, [])))
                             for mode, key in (("eager", PAIR_KEY), ("compiled", "compiled_" + PAIR_KEY))
                             if key in metrics},
            "paper_memory_claim_pct": claims.get("idlora_extra_memory_reduction_vs_moelora_and_hydralora_pct"),
            "memory_ratios": {k: v for k, v in metrics.items() if k.startswith("extra_memory_ratio")},
            "shape_memory_ratios": {k.removeprefix(SHAPES): v for k, v in metrics.items()
                                    if k.startswith(SHAPES + "extra_memory_ratio")},
            "paper_shape_ratios": {k.removeprefix("paper_adapter_bytes_ratio_"): v for k, v in metrics.items()
                                   if k.startswith("paper_adapter_bytes_ratio_")}}


# Figure 3's bars per method: (label, colour, hatch); which apply depends on the panel and on what the file holds.
_FIG3_SERIES = {"ours": ("ours", "tab:blue", None),
                "compiled": ("ours, torch.compile'd (over the compiled merged model)", "lightsteelblue", ".."),
                "official": ("official code (method.impl=official)", "tab:orange", None),
                "paper": ("paper (LLaMA-3-8B, A800)", "tab:gray", "//")}


def _fig3_bars(data: dict, method: str, measure: str, panel: str = "rows") -> list[tuple[str, float | None, list | None]]:
    """(series, overhead %, interval %) of one method in one time panel (``infer`` or ``decode``) of ``panel``
    (``rows``: the mini panel, ``shape_rows``: the paper-shape one), in bar order; a None value is a bar the file
    lacks (drawn as "not measured"), a series that never applies is left out."""
    rows = data[panel]
    bars = [("ours", rows[method][f"{measure}_overhead_pct"], rows[method][f"{measure}_overhead_ci_pct"])]
    if measure == "infer" and any(r["compiled_infer_overhead_pct"] is not None for r in rows.values()):
        bars.append(("compiled", rows[method]["compiled_infer_overhead_pct"],
                     rows[method]["compiled_infer_overhead_ci_pct"]))
    if method in FIG3_OFFICIAL:
        off = rows[FIG3_OFFICIAL[method]]
        bars.append(("official", off[f"{measure}_overhead_pct"], off[f"{measure}_overhead_ci_pct"]))
    if method != "dora_unmerged":
        bars.append(("paper", data["paper_time_overhead_pct"][method], None))
    return bars


def _fig3_time_panel(ax, data: dict, methods: list[str], measure: str, seen: set, panel: str = "rows") -> None:
    """Grouped bars per method (ours, compiled, official, paper), value labels, 95% intervals as error bars."""
    width = 0.8 / max(len(_fig3_bars(data, m, measure, panel)) for m in methods)
    for i, method in enumerate(methods):
        bars = _fig3_bars(data, method, measure, panel)
        for j, (series, value, ci) in enumerate(bars):
            x = i + (j - (len(bars) - 1) / 2) * width
            color, hatch = _FIG3_SERIES[series][1:]
            seen.add(series)  # in the legend, measured or not: it says what the "not measured" slot stands for
            if value is None:
                ax.text(x, 0, "not measured" if series != "paper" else "n/a", rotation=90, ha="center",
                        va="bottom", fontsize=6, color="gray")
                continue
            yerr = None if ci is None else [[max(0.0, value - ci[0])], [max(0.0, ci[1] - value)]]
            ax.bar(x, value, width, color=color, hatch=hatch, edgecolor="white" if hatch else None, yerr=yerr,
                   capsize=2, error_kw={"lw": 0.8})
            top = value if ci is None else (ci[1] if value >= 0 else ci[0])
            ax.text(x, top, f"{value:+.1f}", ha="center", va="bottom" if value >= 0 else "top", fontsize=6)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(range(len(methods)), [FIG3_LABELS[m] for m in methods], fontsize=8)
    ax.grid(axis="y", which="both", lw=0.3, alpha=0.5)
    ax.tick_params(axis="y", labelsize=7)


def _fig3_limits(ax) -> None:
    """15% headroom for the value labels; a grid line every 5 points wherever the range allows it (a 3-point
    difference then spans most of a grid cell), else about 12 lines."""
    lo, hi = ax.get_ylim()
    lo, hi = min(0.0, lo * 1.15), hi * 1.15
    ax.set_ylim(lo, hi)
    if hi - lo <= 120:
        ax.yaxis.set_major_locator(MultipleLocator(10))
        ax.yaxis.set_minor_locator(MultipleLocator(5))
    else:
        ax.yaxis.set_major_locator(MaxNLocator(12, steps=[1, 2, 2.5, 5, 10]))


def _fig3_memory_panel(ax, data: dict, methods: list[str], panel: str = "rows") -> None:
    rows = data[panel]
    for i, m in enumerate(methods):
        pairs = [("ours", rows[m]["extra_memory_mib"])]
        if m in FIG3_OFFICIAL:
            pairs.append(("official", rows[FIG3_OFFICIAL[m]]["extra_memory_mib"]))
        for j, (series, mib) in enumerate(pairs):
            x = i + (j - (len(pairs) - 1) / 2) * 0.38
            if mib is None:
                ax.text(x, 0, "not measured", rotation=90, ha="center", va="bottom", fontsize=6, color="gray")
                continue
            color = "tab:red" if m == "idlora" else _FIG3_SERIES[series][1]
            bar = ax.bar(x, mib, 0.38, color=color)
            ax.bar_label(bar, fmt="%.3g", fontsize=6)
    mem = [r["extra_memory_mib"] for r in rows.values() if r["extra_memory_mib"]]
    if mem and max(mem) > 30 * min(mem):  # unmerged DoRA's ~1 GB at the paper's shapes: a log axis keeps the rest
        ax.set_yscale("log")
        ax.set_ylim(min(mem) / 2, max(mem) * 20)
    else:
        ax.set_ylim(0, 1.7 * max(mem + [1e-9]))
    ax.set_xticks(range(len(methods)), [FIG3_LABELS[m] for m in methods], fontsize=7)
    ax.set_ylabel("extra memory at inference (MiB)", fontsize=8)
    measured = data["shape_memory_ratios" if panel == "shape_rows" else "memory_ratios"]
    ratios = ", ".join(f"{k.removeprefix('extra_memory_ratio_idlora_vs_')}: {v:.2f}" for k, v in measured.items()
                       if "official" not in k)
    shapes = ", ".join(f"{k.split('_idlora_vs_')[-1]}: {v:.2f}" for k, v in data["paper_shape_ratios"].items())
    ax.set_title("Extra memory (ours; orange: official code)", fontsize=9)
    lines = [f"paper: ID-LoRA uses {data['paper_memory_claim_pct']}% less than HydraLoRA and MoELoRA",
             f"ours, measured, ID-LoRA / (ratio): {ratios}"]
    if shapes and panel == "shape_rows":
        lines.append(f"counted adapter bytes, whole LLaMA-3-8B (exact): {shapes}")
    ax.text(0.02, 0.97, "\n".join(lines), transform=ax.transAxes, va="top", fontsize=6.5)


_FIG3_NOTE = ("Official code (method.impl=official), the same function as ours: HydraLoRA recomputes A·drop(h) once "
              "per head and adds each head's g_j·B_j z·(α/r) to the output on its own; MOELoRA loops over its experts "
              "(n A_j and n B_j products, n full-width adds).\nOurs: one A product, one B product over the n heads "
              "side by side, one add. Ours vs official = what the implementation costs; official vs paper = what "
              "remains (hardware, model size, the paper's setup). LoRA and DoRA are PEFT's code, ours and theirs "
              "alike. Bars: median of paired trials; whiskers: 95% bootstrap interval of the median (where measured; "
              "each ratio's trials in efficiency.json's samples, where recorded).")


def _fig3_titles(data: dict) -> dict[str, dict[str, str]]:
    """Per panel present (``shape_rows``, ``rows``): the titles of its prompt-forward and decoding rows."""
    out = {}
    sh = data.get("shape_settings") or {}
    if data.get("shape_rows") is not None:
        where = (f"LLaMA-3-8B layer ×{sh.get('layers', '?')} (random weights, paper ranks)"
                 if not data["quick"] else "paper-shape panel (quick: small shapes)")
        out["shape_rows"] = {
            "infer": f"{where} — prompt forward ({sh.get('prompt_batch', '?')}×{sh.get('prompt_tokens', '?')})",
            "decode": f"{where} — decoding (batch 1, {sh.get('decode_tokens', '?')} tokens)"}
    mini = data.get("mini_settings") or {}
    model = f"{data['model']}{' (quick)' if data['quick'] else ''}, the mini ranks"
    pairs = "\n".join(("compiled " if mode == "compiled" else "") + f"{v:.3f}"
                      + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "") + (f" (n={n})" if n else "")
                      for mode, (v, ci, n) in (data.get("decode_pairs") or {}).items())
    out["rows"] = {"infer": f"{model} — prompt forward ({mini.get('prompt_batch') or 8}×{mini.get('prompt_tokens') or 256})",
                   "decode": f"{model} — decoding (batch 1, {mini.get('decode_tokens') or 64} tokens)"
                             + (f"\nID-LoRA / unmerged LoRA, paired: {pairs}" if pairs else "")}
    return out


def fig3(bench_path: str | Path = "results/bench/efficiency.json", out: str | Path = "results/figures/fig3.png") -> Path:
    """Time overheads per method (prompt forward, decoding) over merged LoRA, ours / official / paper side by side on
    a scale where a few percent show, DoRA on panels of its own (its unmerged decoding is several times the rest);
    extra memory on the right. The paper-shape panel (LLaMA-3-8B layers) on top when measured, then the mini model."""
    data = fig3_data(bench_path)
    plt = _pyplot()
    methods = [m for m in FIG3_METHODS if data["rows"][m]["infer_overhead_pct"] is not None]
    if not methods:
        raise ConfigError(f"{bench_path} holds no inference measurements; run `make bench` (without --parts).")
    main = [m for m in methods if m != "dora_unmerged"]
    titles = _fig3_titles(data)
    fig = plt.figure(figsize=(14, 7.5 * len(titles)))
    grid = fig.add_gridspec(2 * len(titles), 3, width_ratios=[4.2, 0.9 if "dora_unmerged" in methods else 0.01, 3.0],
                            hspace=0.45, wspace=0.25)
    seen: set = set()
    for p, (panel, panel_titles) in enumerate(titles.items()):
        for row, measure in enumerate(("infer", "decode")):
            ax = fig.add_subplot(grid[2 * p + row, 0])
            _fig3_time_panel(ax, data, main, measure, seen, panel)
            ax.set_ylabel("time over merged LoRA (%)", fontsize=8)
            ax.set_title(panel_titles[measure], fontsize=9)
            if "dora_unmerged" in methods:
                ax_d = fig.add_subplot(grid[2 * p + row, 1])
                _fig3_time_panel(ax_d, data, ["dora_unmerged"], measure, seen, panel)
                ax_d.set_title("DoRA (own scale)", fontsize=8)
                _fig3_limits(ax_d)
            _fig3_limits(ax)
        _fig3_memory_panel(fig.add_subplot(grid[2 * p:2 * p + 2, 2]), data, methods, panel)
    handles = [plt.Rectangle((0, 0), 1, 1, color=_FIG3_SERIES[k][1], hatch=_FIG3_SERIES[k][2], ec="white")
               for k in _FIG3_SERIES if k in seen]
    fig.legend(handles, [_FIG3_SERIES[k][0] for k in _FIG3_SERIES if k in seen], loc="upper center",
               ncol=4, fontsize=8, bbox_to_anchor=(0.5, 1 - 0.045 / len(titles)), frameon=False)
    backend = f", compiled: {data['compile_backend']}" if data.get("compile_backend") else ""
    fig.text(0.5, 0.01, _FIG3_NOTE, ha="center", va="bottom", fontsize=6.5, wrap=True)
    fig.suptitle(f"Figure 3: inference cost per method — ours on a CPU{', quick run' if data['quick'] else ''}"
                 f"{backend}; paper on LLaMA-3-8B (A800)", fontsize=10)
    fig.subplots_adjust(top=1 - 0.12 / len(titles), bottom=0.13 / len(titles))
    return _save(fig, Path(out))


def fig4_data(scale: str = "mini", results_dir: str | Path = "results/runs") -> dict:
    """Series per benchmark and method: ours and the paper's (params %, value), from Table 7's runs."""
    table = build_table("table7", scale, str(results_dir))
    series: dict = {}
    intervals: dict = {}  # panel -> row -> (ci_low, ci_high) of our cell, where the table has one
    for method in ("lora", "idlora"):
        rows = [r for r in table.rows if r.startswith(method + "_r")]
        for panel in FIG4_PANELS:
            for who in ("ours", "paper"):
                pts = []
                for r in rows:
                    x, y = table.cell(r, "params_pct"), table.cell(r, panel)
                    if x and y and x[who] is not None and y[who] is not None:
                        pts.append((float(x[who]), float(y[who]), r))
                        if who == "ours" and y.get("ci_low") is not None:
                            intervals.setdefault(panel, {})[r] = (y["ci_low"], y["ci_high"])
                series.setdefault(panel, {})[f"{method}_{who}"] = sorted(pts)
    base = {}  # panel -> (score, ci_low, ci_high) of the untrained model: what training moved
    for panel in FIG4_PANELS:
        c = table.cell("base", panel)
        if c and c["ours"] is not None:
            base[panel] = (c["ours"], c.get("ci_low"), c.get("ci_high"))
    return {"scale": scale, "series": series, "intervals": intervals, "base": base, "notes": table.notes}


def _fig4_whiskers(ax, pts: list, intervals: dict, color: str) -> None:
    """95% interval of each of our points (the table's ci_low / ci_high)."""
    pts = [p for p in pts if p[2] in intervals]
    if pts:
        lo = [p[1] - intervals[p[2]][0] for p in pts]
        hi = [intervals[p[2]][1] - p[1] for p in pts]
        ax.errorbar([p[0] for p in pts], [p[1] for p in pts], yerr=[lo, hi], fmt="none", ecolor=color,
                    elinewidth=0.8, capsize=2, alpha=0.7)


def _fig4_base(ax, base: tuple | None) -> None:
    """The untrained model's score (dotted) and its 95% interval (band)."""
    if base is None:
        return
    score, lo, hi = base
    ax.axhline(score, color="0.4", ls=":", lw=1, label="untrained base (ours)")
    if lo is not None:
        ax.axhspan(lo, hi, color="0.5", alpha=0.12, lw=0)


def fig4(scale: str = "mini", results_dir: str | Path = "results/runs",
         out: str | Path = "results/figures/fig4.png") -> Path:
    data = fig4_data(scale, results_dir)
    if not any(pts for s in data["series"].values() for k, pts in s.items() if k.endswith("_ours")):
        raise ConfigError(f"no Table 7 runs at scale {scale} in {results_dir}; run `make table7 SCALE={scale}` first.")
    plt = _pyplot()
    fig, axes = plt.subplots(2, 3, figsize=(12, 6.5))
    style = {"lora": ("tab:blue", "o", "LoRA"), "idlora": ("tab:red", "s", "ID-LoRA")}
    for ax, panel in zip(axes.flat, FIG4_PANELS):
        for method, (color, marker, label) in style.items():
            for who, ls, alpha in (("ours", "-", 1.0), ("paper", "--", 0.45)):
                pts = data["series"][panel][f"{method}_{who}"]
                if pts:
                    ax.plot([p[0] for p in pts], [p[1] for p in pts], ls, marker=marker, color=color, alpha=alpha,
                            label=f"{label} ({'ours, ' + scale if who == 'ours' else 'paper, LLaMA-3-8B'})")
                if who == "ours":
                    _fig4_whiskers(ax, pts, data["intervals"].get(panel, {}), color)
        _fig4_base(ax, data["base"].get(panel))
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))  # 0.1, 1 — not 10^-1
        ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels (2x10^-1, 3x10^-1 …) overlapped
        ax.set_xticks([0.1, 0.2, 0.5, 1, 2])
        ax.set_title(FIG4_TITLES[panel], fontsize=9)
        ax.set_xlabel("trainable parameters (% of model)", fontsize=8)
        ax.set_ylabel("score (%)", fontsize=8)
        ax.tick_params(labelsize=7)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=5, fontsize=8)
    note = "" if scale == "paper" else f" — scale {scale}: not comparable to the paper in absolute terms"
    note += "; whiskers and band: 95% intervals"
    fig.suptitle(f"Figure 4: LoRA vs ID-LoRA per parameter budget (multi-task){note}", fontsize=10)
    fig.tight_layout(rect=(0, 0.06, 1, 0.96))
    return _save(fig, Path(out))


def budget_curves(results_dir: str | Path) -> dict[str, list[float]]:
    """{run id: training loss per step} of every results file in ``results_dir`` that recorded a loss curve."""
    curves = {}
    for path in record_files(results_dir):
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


def check_options(name: str, run: str | None = None, prompts: int | None = None) -> None:
    """A known figure, and fig_router's options (``run``, ``prompts``) given to it alone: checked before any work."""
    if name not in FIGURES:
        raise ConfigError(f"unknown figure {name!r}; available: {', '.join(FIGURES)} "
                          "(make fig3, make fig4, make fig_rank, make fig_router)")
    if (run is not None or prompts is not None) and name != "fig_router":
        raise ConfigError(f"run= and prompts= are fig_router's options; {name} does not take them.")
    if name == "fig_router" and not run:
        raise ConfigError("fig_router reads one trained ID-LoRA run: pass run=<run id>, e.g. "
                          "run=multitask_llama32.mini.idlora (make fig_router RUN=<run id>).")


def make_figure(name: str, scale: str = "mini", results_dir: str = "results/runs",
                bench: str = "results/bench/efficiency.json", out_dir: str = "results/figures",
                run: str | None = None) -> Path:
    """``<out_dir>/<name>.png`` from files. fig_router reads ``results/router/<run>.json`` (beside ``out_dir``) and
    fig_rank ``<out_dir>/fig_rank.json``: the files their analysis stages write (``idlora.analysis``;
    ``scripts/make_figure.py`` runs the stage first)."""
    check_options(name, run)
    out = Path(out_dir) / f"{name}.png"
    if name == "fig_router":
        return fig_router(Path(out_dir).parent / "router" / f"{run}.json", out)
    if name == "fig_rank":
        return fig_rank(Path(out_dir) / "fig_rank.json", out)
    if name == "fig_budget":
        return fig_budget(results_dir, out, scale)
    return fig3(bench, out) if name == "fig3" else fig4(scale, results_dir, out)
