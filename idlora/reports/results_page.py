"""The measured numbers the README links to (``make results_page``): ``results/README.md``, built from results files
only, never typed by hand.

It reads ``results/bench/efficiency.json`` (``make bench``: Figure 3's paired timing ratios, with each part's date and
the earlier runs of a part kept in ``history``), ``results/bench/cpu.json`` (``make bench PARTS=cpu``),
``results/bench/base_scale.json`` (``make base_scale``), ``results/bench/gpu_check.json`` (``make gpu-check``),
``results/router/*.json`` (``make fig_router``), ``results/claims.json`` (``make claims``: its verdicts counted) and
the run records ``results/runs/*.json`` (training and scoring seconds, per experiment and, through the runs each
table's cells name in ``results/tables/*.json``, per table), and links the other generated files (tables, claims,
memory plan, PMRC cost, real-data pilot, step budget). A file that is absent gives a line saying so, never a number.
Ratios are to the merged model (1.0 = no overhead): the median of paired trials [95% bootstrap interval of the
median], n trials; "over runs" is the mean of the medians of the runs of the current code with a Student-t 95%
interval (``bench_format.between_runs``).
"""

from __future__ import annotations

import json
from pathlib import Path
from statistics import median

from ..bench_format import PAIR_KEY, SHAPES, between_runs, metric_part
from ..files import atomic_write_text
from ..results import record_files
from ..stats import sign_test_p, t_interval

METHODS = (("idlora", "ID-LoRA"), ("lora_unmerged", "LoRA (unmerged)"), ("hydralora", "HydraLoRA, ours"),
           ("hydralora_official", "HydraLoRA, official code"), ("moelora", "MoELoRA, ours"),
           ("moelora_official", "MoELoRA, official code"), ("dora_unmerged", "DoRA (unmerged)"))
MIB = 2 ** 20
LINKED = (("results/CLAIMS.md", "which of the paper's claims hold (`make claims`)"),
          ("results/tables/", "Tables 1-8 and the tables beyond the paper, `.md` / `.tex` / `.json` (`make tables`)"),
          ("results/tables/table_pmrc_cost.md", "what PMRC costs per model and backend (`make pmrc_cost`)"),
          ("results/tables/memory_plan.md", "the paper-scale memory plan (`make memory_plan`)"),
          ("results/pilot/real_data.md", "the real-data pilot (`python scripts/pilot_real_data.py`)"),
          ("results/budget/README.md", "the mini step budget's loss curves (`make fig_budget`)"),
          ("results/figures/", "Figures 3 and 4 and the figures beyond the paper"))


def _read(path: Path) -> dict | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _ratio(value: float | None, interval=None, n: int | None = None) -> str:
    if value is None:
        return "—"
    text = f"{value:.3f}"
    if interval:
        text += f" [{interval[0]:.3f}, {interval[1]:.3f}]"
    return text + (f", n={n}" if n else "")


def _over_runs(report: dict, key: str) -> str:
    pooled = between_runs(report, key)
    if pooled is None:
        return "—"
    return f"{pooled['mean']:.3f} [{pooled['low']:.3f}, {pooled['high']:.3f}], {pooled['runs']} runs"


def _measured(report: dict, key: str) -> str:
    """``key``'s median, interval and n (its trials in ``samples``) in the file's current run."""
    metrics, intervals = report.get("metrics") or {}, report.get("intervals") or {}
    return _ratio(metrics.get(key), intervals.get(key), len((report.get("samples") or {}).get(key) or []))


def _part_date(report: dict, part: str) -> str:
    return ((report.get("parts") or {}).get(part) or {}).get("date") or "undated"


def _mib(report: dict, prefix: str, method: str) -> str:
    metrics = report.get("metrics") or {}
    total = metrics.get(f"{prefix}extra_memory_{method}")
    if total is None:
        return "—"
    parts = [metrics.get(f"{prefix}{kind}_bytes_{method}") for kind in ("adapter", "activation")]
    return f"{total / MIB:.1f}" + (f" ({parts[0] / MIB:.1f} + {parts[1] / MIB:.1f})" if None not in parts else "")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(r) + " |" for r in rows)]


def paper_shapes(report: dict) -> list[str]:
    """Part ``shapes``: one LLaMA-3-8B decoder layer at the paper's ranks; this run and over runs."""
    infer, decode = f"{SHAPES}infer_time_ratio_", f"{SHAPES}decode_time_ratio_"
    rows = [[label, _measured(report, infer + m), _over_runs(report, infer + m), _measured(report, decode + m),
             _over_runs(report, decode + m), _mib(report, SHAPES, m)] for m, label in METHODS]
    out = [f"### The paper's shapes (part `shapes`, this run {_part_date(report, 'shapes')})", "",
           *_table(["method", "prompt forward, this run", "prompt, over runs", "decoding, this run",
                    "decoding, over runs", "extra MiB (adapter + activations)"], rows), ""]
    return out + _runs_table(report, f"{SHAPES}infer_time_ratio_") + _official_gap(report)


def _runs_table(report: dict, prefix: str) -> list[str]:
    """Each pooled run's prompt-forward median per method: the drift between runs."""
    pooled = {m: between_runs(report, prefix + m) for m, _ in METHODS}
    dates = sorted({d for p in pooled.values() if p for d in p["dates"]})
    if not dates:
        return []
    rows = []
    for m, label in METHODS:
        by_date = dict(zip(pooled[m]["dates"], pooled[m]["medians"])) if pooled[m] else {}
        rows.append([label, *(_ratio(by_date.get(d)) for d in dates)])
    return ["Prompt-forward median of each run of the current code:", "", *_table(["method", *dates], rows), ""]


def _official_gap(report: dict) -> list[str]:
    """Official code minus ID-LoRA, in points of the merged model's time, run by run (the same run's two medians)."""
    rows = []
    for kind, label in (("infer", "prompt forward"), ("decode", "decoding")):
        mine = between_runs(report, f"{SHAPES}{kind}_time_ratio_idlora")
        for other in ("hydralora_official", "moelora_official"):
            theirs = between_runs(report, f"{SHAPES}{kind}_time_ratio_{other}")
            if not (mine and theirs):
                continue
            own = dict(zip(mine["dates"], mine["medians"]))
            gaps = [100 * (t - own[d]) for d, t in zip(theirs["dates"], theirs["medians"]) if d in own]
            if len(gaps) >= 2:
                pooled = t_interval(gaps)
                rows.append([label, dict(METHODS)[other], ", ".join(f"{g:+.1f}" for g in gaps),
                             f"{pooled['mean']:+.1f} [{pooled['low']:+.1f}, {pooled['high']:+.1f}]"])
    if not rows:
        return []
    return ["Official code minus ID-LoRA, points of the merged model's time, per run and the mean over runs:", "",
            *_table(["", "against", "per run", "mean [t interval]"], rows), ""]


def mini_panel(report: dict) -> list[str]:
    """Part ``infer`` (the benchmark's model at the mini ranks) and, when measured, part ``compile``."""
    rows = [[label, _measured(report, f"infer_time_ratio_{m}"), _measured(report, f"decode_time_ratio_{m}"),
             _mib(report, "", m), _measured(report, f"compiled_infer_time_ratio_{m}")] for m, label in METHODS]
    settings = report.get("settings") or {}
    shape = (f"prompt forward {settings.get('prompt_batch')}×{settings.get('prompt_tokens')}, decoding "
             f"{settings.get('decode_tokens')} tokens at batch 1, {report.get('trials')} trials")
    return _mini_header(report, shape) + _table(["method", "prompt forward", "decoding",
                                                 "extra MiB (adapter + activations)", "prompt forward, compiled"],
                                                rows) + [""] + _earlier(report, "compile", "compiled_infer_time_ratio_")


def _mini_header(report: dict, shape: str) -> list[str]:
    return [f"### `{report.get('model')}` at the mini ranks (part `infer`, {_part_date(report, 'infer')}; "
            f"part `compile`, {_part_date(report, 'compile')})", "", f"{shape}; compiled: inductor over the "
            "compiled merged model.", ""]


def _earlier(report: dict, part: str, prefix: str) -> list[str]:
    """A part's earlier runs (``history``), per method: median [interval], n."""
    runs = [r for r in report.get("history") or [] if r.get("part") == part]
    if not runs:
        return []
    rows = [[label, *(_ratio(m.get("median"), m.get("interval"), m.get("n")) if (m := r["metrics"].get(prefix + key))
                      else "—" for r in runs)] for key, label in METHODS]
    return [f"Earlier runs of part `{part}` (`history`):", "",
            *_table(["method", *(r.get("date", "undated") for r in runs)], rows), ""]


def _pair_rows(report: dict, key: str, label: str) -> list[list[str]]:
    part = metric_part(key)
    runs = [(r.get("date", "undated"), r["metrics"][key]) for r in report.get("history") or []
            if r.get("part") == part and key in r["metrics"]]
    rows = [[label, d, _ratio(m["median"], m.get("interval"), m.get("n")), "—"] for d, m in runs]
    samples = (report.get("samples") or {}).get(key) or []
    if key in (report.get("metrics") or {}):
        below, above = sum(s < 1 for s in samples), sum(s > 1 for s in samples)
        signs = f"{below} / {above}, p={sign_test_p(below, above):.2g}" if samples else "—"
        rows.append([label, _part_date(report, part), _measured(report, key), signs])
    return rows


def decode_pair(report: dict) -> list[str]:
    """ID-LoRA's batch-1 decoding over unmerged LoRA's, paired directly (parts ``decode``, ``compile_decode``)."""
    rows = _pair_rows(report, PAIR_KEY, "eager") + _pair_rows(report, "compiled_" + PAIR_KEY, "compiled")
    if not rows:
        return []
    pooled = [f"{kind}: {_over_runs(report, key)}" for kind, key in (("eager", PAIR_KEY),
                                                                     ("compiled", "compiled_" + PAIR_KEY))]
    return ["### ID-LoRA's decoding over unmerged LoRA's (parts `decode`, `compile_decode`)", "",
            *_table(["", "run (UTC)", "median [95% interval], n", "trials below / above 1, sign test"], rows), "",
            "Over the runs of the current code: " + "; ".join(pooled) + ".", ""]


def other_metrics(report: dict) -> list[str]:
    """The training-step, PMRC and memory-ratio metrics of the file, as recorded."""
    keys = [k for k in (report.get("metrics") or {}) if k.startswith(("train_step_", "pmrc_"))
            or "idlora_vs_" in k and "time" not in k]
    rows = [[f"`{k}`", f"{report['metrics'][k]:.4g}", metric_part(k), _part_date(report, metric_part(k))]
            for k in keys]
    return ["### Training step, PMRC and memory ratios", "", *_table(["metric", "value", "part", "measured"], rows), ""]


def efficiency(path: Path, shown: str) -> list[str]:
    report = _read(path)
    out = [f"## Efficiency (`{shown}`, `make bench`, Figure 3)", ""]
    if report is None:
        return out + ["Not measured: the file is absent.", ""]
    machine = report.get("provenance") or {}
    out += [f"Machine: torch {machine.get('torch')}, {machine.get('threads')} threads, "
            f"{'CUDA ' + str(machine['cuda']) if machine.get('cuda') else 'no CUDA'}.", ""]
    return out + paper_shapes(report) + mini_panel(report) + decode_pair(report) + other_metrics(report)


def _ci_ratio(entry: dict | None) -> str:
    if not entry:
        return "—"
    return _ratio(entry.get("median"), entry.get("ci95"), entry.get("trials"))


def cpu(path: Path, shown: str) -> list[str]:
    """``make bench PARTS=cpu``: this CPU's throughput for the mini replication."""
    report = _read(path)
    out = [f"## CPU throughput (`{shown}`, `make bench PARTS=cpu`)", ""]
    if report is None:
        return out + ["Not measured: the file is absent.", ""]
    prov, train = report.get("provenance") or {}, report.get("train") or {}
    out += [f"Measured {prov.get('date')} (commit {prov.get('commit')}, torch {prov.get('torch')}, "
            f"{prov.get('threads')} threads; precision `auto` chose {(prov.get('precision_auto') or {}).get('used')})"
            f"; training: {report.get('method', {}).get('name')} r={report.get('method', {}).get('r')}.", ""]
    rows = [[setting, f"{tps:.1f}", f"{(train.get('step_seconds_median') or {}).get(setting, float('nan')):.2f}"]
            for setting, tps in (train.get("tokens_per_s") or {}).items()]
    out += _table(["training", "tokens/s", "step seconds (median)"], rows) + [""]
    ratios = [[f"training `{k}`", _ci_ratio(v)] for k, v in (train.get("ratios") or {}).items()]
    ratios += [[f"{part} `fp32_over_bf16`", _ci_ratio((report.get(part) or {}).get("fp32_over_bf16"))]
               for part in ("generation", "scoring") if report.get(part)]
    out += _table(["ratio", "median [95% interval], trials"], ratios) + [""]
    roof = [[p, f"{v['achieved_gflops_per_s']:.1f}", f"{v['gemm_peak_gflops_per_s']:.1f}", f"{v['share_of_peak']:.2f}"]
            for p, v in (report.get("roofline") or {}).items()]
    return out + _table(["precision", "step GFLOP/s", "plain GEMMs GFLOP/s", "share"], roof) + [""]


def base_scale(path: Path, shown: str) -> list[str]:
    """``make base_scale``: RMS of B's input, ID-LoRA over LoRA at initialisation, per projection type."""
    report = _read(path)
    out = [f"## B's input at initialisation, ID-LoRA over LoRA (`{shown}`, `make base_scale`)", ""]
    if report is None:
        return out + ["Not measured: the file is absent.", ""]
    rows = [[p, f"{v['mean']:.2f}", f"{v['min']:.2f}", f"{v['max']:.2f}", str(v["layers"])]
            for p, v in sorted((report.get("ratio_by_projection") or {}).items())]
    return out + [f"`{report.get('model')}`, ranks {report.get('ranks')}, {report.get('prompts')} prompts; mean over "
                  f"projection types {report.get('mean_ratio', float('nan')):.2f}.", "",
                  *_table(["projection", "mean", "min", "max", "layers"], rows), ""]


def router(folder: Path, shown: str) -> list[str]:
    """``make fig_router``: what a trained ID-LoRA router does, per run analysed."""
    out = [f"## What the router does (`{shown}/`, `make fig_router`)", ""]
    rows = []
    for path in sorted(folder.glob("*.json")):
        r = _read(path)
        s = r.get("summary") or {}
        ent, within = s.get("entropy_norm") or {}, s.get("within_share") or {}
        layers = r.get("layers") or {}
        prompts = ", ".join(f"{b} {n}" for b, n in (r.get("prompts") or {}).items())
        lowest = min(layers, key=lambda n: layers[n].get("entropy_norm", float("inf")), default=None)
        tokens = max((v.get("tokens", 0) for v in layers.values()), default=0)
        rows.append([f"`{r.get('run_id')}`", str(r.get("router")), prompts, str(len(r.get("layers") or {})),
                     str(tokens), f"{ent.get('mean', float('nan')):.3f} (min {ent.get('min', float('nan')):.3f}, "
                     f"`{lowest}`)",
                     f"{100 * within.get('mean', float('nan')):.1f}%"])
    if not rows:
        return out + ["No run analysed.", ""]
    return out + _table(["run", "router", "prompts", "layers", "tokens", "entropy / log k, mean over layers",
                         "variance of α within sequences"], rows) + [""]


def _runs(folder: Path) -> dict[str, list[dict]]:
    by_experiment: dict[str, list[dict]] = {}
    for path in record_files(folder):
        record = _read(path)
        by_experiment.setdefault(f"{record.get('experiment')}.{record.get('scale')}", []).append(record)
    return by_experiment


def _median_s(values: list[float]) -> str:
    return f"{median(values):,.0f}" if values else "—"


def _bench_seconds(records: list[dict], benchmark: str) -> list[float]:
    return [s for r in records if (s := ((r.get("benchmarks") or {}).get(benchmark) or {}).get("seconds")) is not None]


def run_times(folder: Path, shown: str) -> list[str]:
    """Training and scoring seconds of the committed runs, per experiment and scale (``results/runs``)."""
    out = [f"## Run times (`{shown}/*.json`)", "",
           "Seconds from each run's record: training (`train.seconds`; runs of `method=base` train nothing), scoring "
           "per benchmark (`benchmarks.*.seconds`), the whole run (`provenance.seconds`); medians over runs. The "
           "records also hold each run's threads and hardware (`provenance.hardware`); the wall time of a table "
           "target, whose runs may train side by side, is not recorded.", ""]
    rows = []
    for name, records in sorted(_runs(folder).items()):
        trained = [r["train"]["seconds"] for r in records if (r.get("train") or {}).get("seconds")]
        benches = sorted({b for r in records for b in r.get("benchmarks") or {}})
        scoring = ", ".join(f"{b} {_median_s(_bench_seconds(records, b))}" for b in benches)
        whole = [r["provenance"]["seconds"] for r in records if (r.get("provenance") or {}).get("seconds")]
        dates = sorted((r.get("provenance") or {}).get("end", "")[:10] for r in records)
        rows.append([f"`{name}`", str(len(records)), _median_s(trained), scoring or "—", _median_s(whole),
                     f"{sum(whole):,.0f}", f"{dates[0]} – {dates[-1]}" if dates and dates[0] else "—"])
    if not rows:
        return out + ["No run recorded.", ""]
    return out + _table(["experiment", "runs", "training s", "scoring s, per benchmark", "run s", "run s, sum",
                         "recorded"], rows) + [""]


def table_times(folder: Path, shown: str) -> list[str]:
    """Per table (``results/tables/*.json``): the runs its cells read, and their seconds from ``results/runs``."""
    records = {r.get("run_id"): r for rs in _runs(folder.parent / "runs").values() for r in rs}
    rows = []
    for path in sorted(folder.glob("*.json")):
        table = _read(path)
        ids = sorted({r for c in table.get("cells") or [] for r in c.get("runs") or [] if r in records})
        if ids:
            trained = [s for r in ids if (s := (records[r].get("train") or {}).get("seconds"))]
            whole = [s for r in ids if (s := (records[r].get("provenance") or {}).get("seconds"))]
            rows.append([f"`{path.stem}`", str(len(ids)), _median_s(trained), _median_s(whole), f"{sum(whole):,.0f}"])
    if not rows:
        return []
    return [f"Per table (`{shown}/*.json`: the distinct runs its cells read, shared runs counted in each table):", "",
            *_table(["table", "runs", "training s", "run s", "run s, sum"], rows), ""]


def _scalars(part: dict) -> str:
    """A GPU-check part's own scalar results (numbers to four significant digits), in the file's order."""
    skip = {"status", "seconds", "budget_s", "skipped"}
    items = [f"`{k}` {v:.4g}" if isinstance(v, float) else f"`{k}` {v}" for k, v in part.items()
             if k not in skip and isinstance(v, (int, float, str)) and not isinstance(v, bool)]
    return "; ".join(items) or "—"


def gpu_check(path: Path, shown: str) -> list[str]:
    """``make gpu-check``: each part's status, time against its budget, what it skipped, its scalar results."""
    report = _read(path)
    out = [f"## GPU check (`{shown}`, `make gpu-check`)", ""]
    if report is None:
        return out + ["Not measured: the file is absent (it is written only on a CUDA device).", ""]
    prov = report.get("provenance") or {}
    rows = [[name, str(p.get("status")), f"{p.get('seconds', float('nan')):.0f} / {p.get('budget_s')}",
             str(len(p.get("skipped") or [])), _scalars(p)] for name, p in (report.get("parts") or {}).items()]
    return out + [f"{prov.get('device')}, {prov.get('date')} (commit {prov.get('commit')}, torch {prov.get('torch')}, "
                  f"CUDA {prov.get('cuda')}); the nested results are in the file.", "",
                  *_table(["part", "status", "seconds / budget", "skipped", "results"], rows), ""]


def claims(path: Path, shown: str) -> list[str]:
    """How many of ``make claims``' verdicts are of each kind (the claims themselves: ``CLAIMS.md``)."""
    report = _read(path)
    out = [f"## Claims (`{shown}`, `make claims`)", ""]
    if report is None:
        return out + ["Not judged: the file is absent.", ""]
    verdicts = [c.get("verdict") for c in report.get("claims") or []]
    counts = {v: verdicts.count(v) for v in ("supported", "contradicted", "not resolved")}
    return out + [f"Scale `{report.get('scale')}`: {len(verdicts)} claims, "
                  + ", ".join(f"{n} {v}" for v, n in counts.items()) + "; each with its effect, interval and runs "
                  "in [CLAIMS.md](CLAIMS.md).", ""]


def build(results: str | Path = "results") -> str:
    """The page, from the results files under ``results``."""
    root = Path(results)
    lines = ["# Measured results", "",
             "Generated by `make results_page` (`idlora/reports/results_page.py`) from the results files named in "
             "each section; never edited by hand. Ratios are to the merged model (1.000 = no overhead): the median of "
             "paired trials [95% bootstrap interval of the median], n trials; *over runs*: the mean of the medians "
             "of the runs of the current code, with a Student-t 95% interval.", "",
             "Other generated results:", "",
             *(f"- [{p}]({p.removeprefix('results/')}) — {what}" for p, what in LINKED), ""]
    sections = ((claims, "claims.json"), (efficiency, "bench/efficiency.json"), (cpu, "bench/cpu.json"),
                (base_scale, "bench/base_scale.json"), (gpu_check, "bench/gpu_check.json"), (router, "router"),
                (run_times, "runs"), (table_times, "tables"))
    for section, rel in sections:
        lines += section(root / rel, f"{root.name}/{rel}")
    return "\n".join(lines).rstrip() + "\n"


def write(text: str, results: str | Path = "results") -> Path:
    return atomic_write_text(Path(results) / "README.md", text)
