"""Which of the paper's claims hold (``make claims``): ``results/claims.json`` and ``results/CLAIMS.md``.

Built only from results files: the runs of Tables 1-3, 7, 8 (and, beyond the paper, of ``table_lr``: Table 2's
comparison with ID-LoRA at lower lrs, ``table_init``: PMRC against SVD and Gaussian bases, ``table_rb``: the Rank
Boosting factor, ``table_router``: the router against 1/k and the text's router; and ID-LoRA against the baselines the
paper's reviewers named, PEFT's VeRA, VB-LoRA, LoRA-FA and Lily, in Tables 1-2) read as the tables
read them (``tables.from_runs.load_runs``), ``results/bench/efficiency.json`` for the efficiency claim and Table 6's
builder for the parameter counts. Each entry is ``{"claim", "table", "effect", "ci", "p", "test", "verdict",
"runs"}``: the effect in points, ID-LoRA minus the comparator; its 95% interval a paired bootstrap over examples and
seeds (``stats.bootstrap_ci``); p from the exact paired sign test (``stats.paired_test``). Verdict: ``supported`` if
the interval lies above 0, ``contradicted`` if below, else ``not resolved``; a claim whose runs are missing or
unusable is ``not resolved`` with ``"missing"`` naming the runs and why — never a made-up number.

``idlora.reports.prereg`` judges the hypotheses of ``claims/preregistered.yaml`` with the fair protocol's rule and
writes both: CLAIMS.md shows them first, the entries above after them as the earlier, not pre-registered verdicts.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..files import atomic_write_json, atomic_write_text
from ..methods import PEFT_BASELINES
from ..bench_format import SHAPES, between_runs
from ..stats import bootstrap_ci, median_difference_ci, paired_test, seed_mean, sign_test_p, t_interval
from .tables.from_runs import COLUMN_LABELS, LABELS, TableRuns, cell_scores, load_runs
from .tables.render import paper_numbers

SUPPORTED, CONTRADICTED, NOT_RESOLVED = "supported", "contradicted", "not resolved"
SIGN_TEST = "exact sign test"
MODELS = ("llama3_8b", "mistral_7b")
ABLATION_COLUMNS = ("gsm8k", "mmlu", "cqa", "humaneval_pass@1")  # Tables 3, 7, 8: every benchmark, pass@1 for code


def verdict(low: float, high: float) -> str:
    return SUPPORTED if low > 0 else CONTRADICTED if high < 0 else NOT_RESOLVED


def _entry(claim: str, table: str, runs: list[str], test: str = SIGN_TEST) -> dict:
    return {"claim": claim, "table": table, "effect": None, "ci": None, "p": None, "test": test,
            "verdict": NOT_RESOLVED, "runs": runs}


def _why(tr: TableRuns, row: str, col: str) -> list[dict]:
    if row not in tr.run_ids:
        return [{"run": None, "why": f"row {row!r} is not in the experiment list"}]
    if not tr.records[row]:
        why = "no usable results file (missing, written by another config, or unreadable)"
        return [{"run": r, "why": next((p for p in tr.problems if p.startswith(r)), why)} for r in tr.run_ids[row]]
    return [{"run": r, "why": f"no per-example scores for {col} (or a metric not equal to their mean)"}
            for r in tr.run_ids[row]]


def compare(claim: str, table: str, tr: TableRuns, row: str, against: str, col: str) -> dict:
    """``row`` minus ``against`` on ``col``, in points, with its paired interval and sign test."""
    entry = _entry(claim, table, [*tr.run_ids.get(row, []), *tr.run_ids.get(against, [])])
    sides, missing = [], []
    for r in (row, against):
        scores = cell_scores(tr.records[r], col, tr.directory)[1] if r in tr.records else None
        sides.append(scores)
        missing += [] if scores else _why(tr, r, col)
    if missing:
        entry["missing"] = missing
        return entry
    a, b = sides
    ci = bootstrap_ci(a, b)
    ids = sorted(set.intersection(*(set(s) for s in [*a, *b])))
    test = paired_test(seed_mean(a, ids), seed_mean(b, ids))
    entry.update(effect=100 * ci["mean"], ci=[100 * ci["low"], 100 * ci["high"]], p=test["p"],
                 n_pairs=test["n_pairs"], n=ci["n"], seeds=ci["seeds"], verdict=verdict(100 * ci["low"],
                                                                                          100 * ci["high"]))
    return entry


def _trainable(tr: TableRuns, row: str, col: str | None = None) -> int | None:
    recs = [r for r in tr.records.get(row, []) if col is None or col in r.get("metrics", {})]
    return recs[0]["trainable_params"] if recs else None


def _models(tr: TableRuns) -> list[tuple[str, str]]:
    """(model, label) of each model whose rows have runs of their own; a model whose ID-LoRA row is served by
    another model's runs (identical in effect at this scale: at mini both are SmolLM2) is folded into its label,
    so the same runs are not counted as two pieces of evidence."""
    out: list[tuple[str, str]] = []
    for model in MODELS:
        by = tr.served.get(f"{model}/idlora", "").split("/")[0]
        if by and by != model and any(m == by for m, _ in out):
            out = [(m, f"{label} (= {LABELS[model]}: the same runs at this scale)" if m == by else label)
                   for m, label in out]
            continue
        out.append((model, LABELS[model]))
    return out


def _counts(tr: TableRuns, a: str, b: str, col: str | None = None) -> tuple[str, dict]:
    """" (trainable parameters: ID-LoRA n, <b's label> m)" and the two counts, from the rows' results files."""
    pa, pb = _trainable(tr, a, col), _trainable(tr, b, col)
    other = b.split("/")[-1]
    text = f" (trainable parameters: ID-LoRA {pa:,}, {LABELS[other]} {pb:,})" if None not in (pa, pb) else ""
    return text, {"idlora": pa, other: pb}


def reviewer_claim(label: str, other: str, setting: str, col: str) -> str:
    """The claim text of ID-LoRA against one of the baselines the paper's reviewers named (not in the paper)."""
    return (f"Beyond the paper (a reviewers' baseline): {label}: ID-LoRA >= {LABELS[other]} {setting} on "
            f"{COLUMN_LABELS[col]}")


def table1_claims(tr: TableRuns) -> list[dict]:
    out = []
    for model, label in _models(tr):
        for other in ("lora", *PEFT_BASELINES):
            for col in ("gsm8k", "humaneval_pass@1", "hexphi_refusal"):
                a, b = f"{model}/idlora", f"{model}/{other}"
                counts, params = _counts(tr, a, b, col)
                text = (f"{label}: ID-LoRA >= LoRA single-task on {COLUMN_LABELS[col]}, with fewer trainable "
                        f"parameters" if other == "lora" else reviewer_claim(label, other, "single-task", col))
                e = compare(text + counts, "table1", tr, a, b, col)
                out.append({**e, "params": params})
    return out


def table2_claims(tr: TableRuns) -> list[dict]:
    paper = paper_numbers()["table2"]["rows"]
    out = []
    for model, label in _models(tr):
        for other in ("lora", "dora", "hydralora", *PEFT_BASELINES):
            for col in ("humaneval_pass@1", "mmlu"):
                a, b = f"{model}/idlora", f"{model}/{other}"
                text = (f"{label}: ID-LoRA >= {LABELS[other]} multi-task on {COLUMN_LABELS[col]}"
                        if other not in PEFT_BASELINES else
                        reviewer_claim(label, other, "multi-task", col) + _counts(tr, a, b, col)[0])
                out.append(compare(text, "table2", tr, a, b, col))
        share = 100 * paper[model]["idlora"]["params_pct"] / paper[model]["lora"]["params_pct"]
        a, b = f"{model}/idlora", f"{model}/lora"
        e = _entry(f"{label}: ID-LoRA trains fewer parameters than LoRA (the paper's Table 2: ~{share:.0f}% of "
                   "LoRA's; effect: our share, %)",
                   "table2", [*tr.run_ids.get(a, []), *tr.run_ids.get(b, [])], test="parameter count")
        pa, pb = _trainable(tr, a), _trainable(tr, b)
        if pa is None or pb is None:
            e["missing"] = (_why(tr, a, "params_pct") if pa is None else []) + (
                _why(tr, b, "params_pct") if pb is None else [])
        else:  # exact counts: no interval; "supported" = fewer than LoRA's, the paper's share beside it
            e.update(effect=100 * pa / pb, paper=share, params={"idlora": pa, "lora": pb},
                     verdict=SUPPORTED if pa < pb else CONTRADICTED)
        out.append(e)
    return out


def pairwise_claims(table: str, tr: TableRuns, pairs: list[tuple[str, str, str]]) -> list[dict]:
    """One entry per (claim, row, against) and benchmark of ``ABLATION_COLUMNS``."""
    return [compare(f"{text} on {COLUMN_LABELS[col]}", table, tr, row, against, col)
            for text, row, against in pairs for col in ABLATION_COLUMNS]


def table3_pairs() -> list[tuple[str, str, str]]:
    return [("PMRC selection beats serial selection", "idlora_pmrc_rb", "idlora_serial_rb"),
            ("PMRC selection beats random selection", "idlora_pmrc_rb", "idlora_random_rb"),
            ("Rank Boosting helps (PMRC with vs without)", "idlora_pmrc_rb", "idlora_pmrc_no_rb")]


def lr_pairs() -> list[tuple[str, str, str]]:
    """Table 2's comparison with ID-LoRA at lower lrs (``table_lr``, beyond the paper): at mini every adapter shares one
    lr, which moves ID-LoRA's output several times further per step than LoRA's (``make base_scale``)."""
    return [(f"Beyond the paper (table_lr): ID-LoRA at lr {lr} >= LoRA at mini's lr 1e-3, multi-task",
             f"idlora_lr{lr}", "lora") for lr in ("3e-4", "1e-4")]


def init_pairs() -> list[tuple[str, str, str]]:
    """The reviewers' "why interpolative decomposition?" (``table_init``, beyond the paper): PMRC's rows of W against
    bases that are not rows of W, on Table 3's setting."""
    return [(f"Beyond the paper (table_init): PMRC's rows of W beat {label} as the frozen bases", "idlora_pmrc", row)
            for row, label in (("idlora_svd", "SVD of row blocks"), ("idlora_gaussian", "Gaussian bases"))]


def rb_pairs() -> list[tuple[str, str, str]]:
    """The Rank Boosting factor m (``table_rb``, beyond the paper): RB against no RB at equal r, and more parts."""
    return [("Beyond the paper (table_rb): Rank Boosting (m=2) beats m=1 at equal r", "idlora_rb_m2", "idlora_rb_m1"),
            ("Beyond the paper (table_rb): m=4 parts beat m=2", "idlora_rb_m4", "idlora_rb_m2")]


def router_pairs() -> list[tuple[str, str, str]]:
    """What the router buys (``table_router``, beyond the paper; a reviewer: "essentially a learnable alpha")."""
    row = "idlora_router_linear"
    return [("Beyond the paper (table_router): the router softmax(R h) beats uniform 1/k", row, "idlora_router_uniform"),
            ("Beyond the paper (table_router): softmax(R h) beats the text's T · x_i", row, "idlora_router_text"),
            ("Beyond the paper (table_router): softmax(R h) beats softmax(T · x_i)", row, "idlora_router_inner")]


def table7_pairs(tr: TableRuns) -> list[tuple[str, str, str]]:
    """ID-LoRA rows against LoRA rows at the same parameter budget: both sorted by rank, paired in order (the list
    pairs LoRA r=4..32 with ID-LoRA r=32..256, Figure 4)."""
    def ranked(prefix):
        return sorted((r for r in tr.rows if r.startswith(prefix)), key=lambda r: int(r.rsplit("_r", 1)[1]))

    return [(f"At an equal parameter budget ID-LoRA ({i}) beats LoRA ({lo})", i, lo)
            for lo, i in zip(ranked("lora_r"), ranked("idlora_r"))]


def table7_claims(tr: TableRuns) -> list[dict]:
    """Table 7's pairs on every benchmark, each naming both rows' trainable counts and their ratio: the pairs are
    the paper's, equal in budget on LLaMA-3-8B, not necessarily at this scale (at mini ID-LoRA's routers weigh more)."""
    out = []
    for text, row, against in table7_pairs(tr):
        pa, pb = _trainable(tr, row), _trainable(tr, against)
        counts = (f" (trainable parameters here: ID-LoRA {pa:,}, LoRA {pb:,}, ratio {pa / pb:.2f})"
                  if pa is not None and pb is not None else "")
        for e in pairwise_claims("table7", tr, [(text + counts, row, against)]):
            out.append({**e, "params": {"idlora": pa, "lora": pb}})
    return out


def table8_claims(tr: TableRuns, best: str = "k4") -> list[dict]:
    """k = 4 is best: per benchmark, k4 minus the best other k; supported only if k4 beats every other k."""
    out = []
    for col in ABLATION_COLUMNS:
        others = [k for k in tr.rows if k != best and k != "base"]  # the untrained row is no k
        each = [compare(f"{best} beats {k}", "table8", tr, best, k, col) for k in others]
        e = _entry(f"k = {best[1:]} is best on {COLUMN_LABELS[col]} (k4 minus the best other k)", "table8",
                   sorted({r for x in each for r in x["runs"]}))
        missing = [m for x in each for m in x.get("missing", [])]
        if missing or not each:
            e["missing"] = missing or [{"run": None, "why": "no other k in the experiment list"}]
        else:
            worst = min(each, key=lambda x: x["effect"])  # against the best other k
            verdicts = {x["verdict"] for x in each}
            e.update(effect=worst["effect"], ci=worst["ci"], p=worst["p"], n_pairs=worst["n_pairs"],
                     seeds=worst["seeds"],
                     verdict=SUPPORTED if verdicts == {SUPPORTED} else CONTRADICTED if CONTRADICTED in verdicts
                     else NOT_RESOLVED)
        e["each"] = [{"claim": x["claim"], "effect": x["effect"], "ci": x["ci"], "verdict": x["verdict"]} for x in each]
        out.append(e)
    return out


TIMING_TEST = "paired timing trials: 95% bootstrap interval of the median ratio, exact sign test against 1"
TIMING_DIFF_TEST = "paired timing trials: bootstrap interval of the difference of two medians (independent samples)"
RUNS_TEST = ("runs of the current code (efficiency.json's history): Student-t 95% interval of the runs' medians "
             "(a difference: per run, the same run's two medians)")


def _over_runs(bench: dict, key: str, other: str | None = None) -> dict | None:
    """``key``'s overhead in percent over the benchmark's runs of the current code, or (``other``) ``other``'s
    overhead minus ``key``'s run by run, with a Student-t interval over runs; None below 2 runs. A shared machine
    drifts between runs by more than one run's interval, so a timing claim is judged over runs where there are any."""
    mine = between_runs(bench, key)
    if mine is None:
        return None
    if other is None:
        values = [100 * (m - 1) for m in mine["medians"]]
    else:
        theirs = between_runs(bench, other)
        by_date = dict(zip(theirs["dates"], theirs["medians"])) if theirs else {}
        values = [100 * (by_date[d] - m) for d, m in zip(mine["dates"], mine["medians"]) if d in by_date]
    if len(values) < 2:
        return None
    t = t_interval(values)
    return {"effect": t["mean"], "ci": [t["low"], t["high"]], "n_runs": t["runs"], "test": RUNS_TEST}


def _timing(bench: dict, method: str) -> tuple[str, float, list | None, list | None] | None:
    """(metric key, median ratio, 95% interval, per-trial ratios) of ``method``'s prompt forward over merged LoRA:
    the paper-shape panel (LLaMA-3-8B layers, the paper's ranks) where the file has it, else the benchmark's model."""
    for key in (f"{SHAPES}infer_time_ratio_{method}", f"infer_time_ratio_{method}"):
        if key in bench["metrics"]:
            return (key, bench["metrics"][key], (bench.get("intervals") or {}).get(key),
                    (bench.get("samples") or {}).get(key))
    return None


def _equality_verdict(low: float, high: float, claimed: float) -> str:
    """A claimed value against an interval: contradicted if the interval excludes it; the paper states no margin for
    an equality, so it is never 'supported'."""
    return CONTRADICTED if not low <= claimed <= high else NOT_RESOLVED


def _time_claims(bench: dict, bench_file: Path) -> list[dict]:
    """ID-LoRA's overhead against the paper's +0.5%, and against HydraLoRA's and MoELoRA's (official code; ours
    beside it): the paper's +36.5% and +61.6%."""
    paper = paper_numbers()["figure3"]["claims"]
    claimed = paper["idlora_time_overhead_vs_lora_pct"]
    own = _entry(f"ID-LoRA's inference time is LoRA's + {claimed}% (the paper's Figure 3)", "efficiency",
                 [str(bench_file)], test=TIMING_TEST)
    mine = _timing(bench, "idlora")
    faster = [_faster_than(bench, bench_file, mine, _timing(bench, f"{m}_official"), _timing(bench, m), m,
                           paper[f"{m}_time_overhead_vs_lora_pct"] - claimed) for m in ("hydralora", "moelora")]
    if mine is None:
        own["missing"] = [{"run": str(bench_file), "why": "no infer_time_ratio_idlora"}]
        return [own, *faster]
    key, ratio, ci, trials = mine
    own.update(effect=100 * (ratio - 1), paper=claimed, metric=key)
    if ci is None or not trials:
        own["why"] = f"{bench_file.name} has no interval or trials for {key}: rerun `make bench`"
    else:
        own.update(ci=[100 * (v - 1) for v in ci], n=len(trials),
                   p=sign_test_p(sum(r > 1 for r in trials), sum(r < 1 for r in trials)),
                   # an equality has no margin in the paper: the claim can be contradicted, never supported
                   verdict=_equality_verdict(100 * (ci[0] - 1), 100 * (ci[1] - 1), claimed),
                   why="contradicted if the interval excludes the paper's overhead; the paper states no margin, so "
                       "an equality is never 'supported'")
    runs = _over_runs(bench, key)
    if runs:  # judged over runs; the latest run's own verdict kept beside it
        own["this_run"] = {k: own.get(k) for k in ("effect", "ci", "n", "p", "verdict", "test")}
        own.update(runs, n=None, p=None, verdict=_equality_verdict(*runs["ci"], claimed))
    return [own, *faster]


def _faster_than(bench: dict, bench_file: Path, mine: tuple | None, official: tuple | None, ours: tuple | None,
                 m: str, paper_gap: float) -> dict:
    """Their overhead minus ID-LoRA's (points; > 0: ID-LoRA faster), the official code's; ours in ``ours``.
    ``mine``, ``official``, ``ours``: ``_timing``'s answers (None: not measured)."""
    e = _entry(f"ID-LoRA's inference is faster than {LABELS[m]}'s (the paper: by {paper_gap:.1f} points)",
               "efficiency", [str(bench_file)], test=TIMING_DIFF_TEST)
    e["paper"] = paper_gap
    for impl, name, theirs in (("official", f"{m}_official", official), ("ours", m, ours)):
        if (theirs is None or mine is None or not theirs[3] or not mine[3]
                or theirs[0].startswith(SHAPES) != mine[0].startswith(SHAPES)):
            e.setdefault("missing", []).append({"run": str(bench_file), "why": f"no trials of {name} beside ID-LoRA's "
                                                "in one panel: rerun `make bench`"})
            continue
        d = median_difference_ci([100 * r for r in theirs[3]], [100 * r for r in mine[3]])
        found = {"effect": d["difference"], "ci": [d["low"], d["high"]], "n": d["n"], "metric": theirs[0],
                 "verdict": verdict(d["low"], d["high"])}
        runs = _over_runs(bench, mine[0], theirs[0])
        if runs:  # judged over runs; the latest run's own verdict kept beside it
            found = {**found, "this_run": dict(found, test=TIMING_DIFF_TEST), **runs, "n": None,
                     "verdict": verdict(*runs["ci"])}
        if impl == "official":
            e.update(found)
        else:
            e["ours"] = found
    return e


def efficiency_claims(bench_file: Path) -> list[dict]:
    """Inference time against the paper's overheads (paired timing trials) and extra memory against HydraLoRA's
    and MoELoRA's (counted bytes), from efficiency.json."""
    paper = paper_numbers()["figure3"]["claims"]
    memory = [_entry(f"ID-LoRA's extra memory is ~{paper['idlora_extra_memory_reduction_vs_moelora_and_hydralora_pct']}"
                     f"% below {LABELS[m]}'s", "efficiency", [str(bench_file)], test="memory count") for m in
              ("hydralora", "moelora")]
    if not bench_file.exists():
        time = _time_claims({"metrics": {}}, bench_file)
        for e in (*time, *memory):
            e["missing"] = [{"run": str(bench_file), "why": "no efficiency results: run `make bench`"}]
        return [*time, *memory]
    bench = json.loads(bench_file.read_text())
    bench["metrics"] = metrics = bench.get("metrics", {})
    for e, m in zip(memory, ("hydralora", "moelora")):
        r = metrics.get(f"extra_memory_ratio_idlora_vs_{m}")
        if r is None:
            e["missing"] = [{"run": str(bench_file), "why": f"no extra_memory_ratio_idlora_vs_{m}"}]
            continue
        # bytes counted, not timed: no interval; "supported" = below the comparator's, the paper's ~45% beside it
        e.update(effect=100 * (1 - r), paper=paper["idlora_extra_memory_reduction_vs_moelora_and_hydralora_pct"],
                 verdict=SUPPORTED if r < 1 else CONTRADICTED,
                 paper_scale_adapter_reduction=_maybe(metrics, f"paper_adapter_bytes_ratio_llama3_8b_idlora_vs_{m}"))
    return [*_time_claims(bench, bench_file), *memory]


def _maybe(metrics: dict, key: str):
    return None if metrics.get(key) is None else 100 * (1 - metrics[key])


def table6_claim(table6=None) -> dict:
    """The paper's Table 6 counts against ours (as built): effect = the largest relative difference, in percent;
    supported if every count rounds to the number the paper prints."""
    from .tables.table6 import build, fmt_count

    t = table6 or build()
    e = _entry("The paper's trainable-parameter counts (Table 6)", "table6", [], test="parameter count")
    cells = [c for c in t.cells if c["paper"] is not None]
    if not cells:
        e["missing"] = [{"run": None, "why": "Table 6 has no cell with a paper number"}]
        return e
    scale = {"M": 1e6, "B": 1e9}
    rel = [(c, 100 * (c["ours"] - float(c["paper"][:-1]) * scale[c["paper"][-1]]) / (float(c["paper"][:-1])
                                                                                    * scale[c["paper"][-1]]))
           for c in cells]
    worst = max(rel, key=lambda x: abs(x[1]))
    mismatched = [f"{c['column']} r={c['row']}: ours {fmt_count(c['ours'])}, paper {c['paper']}" for c, _ in rel
                  if fmt_count(c["ours"]) != c["paper"]]
    e.update(effect=worst[1], verdict=CONTRADICTED if mismatched else SUPPORTED, mismatched=mismatched)
    return e


CLAIM_TABLES = ("table1", "table2", "table3", "table7", "table8", "table_lr", "table_init", "table_rb", "table_router")


def table_runs(scale: str, results_dir: str | Path) -> dict[str, TableRuns]:
    """The usable records of every table a claim reads, by table."""
    return {t: load_runs(t, scale, Path(results_dir)) for t in CLAIM_TABLES}


def build_claims(scale: str = "mini", results_dir: str | Path = "results/runs",
                 bench_file: str | Path = "results/bench/efficiency.json", table6=None,
                 runs: dict[str, TableRuns] | None = None) -> list[dict]:
    runs = runs or table_runs(scale, results_dir)
    return [*table1_claims(runs["table1"]), *table2_claims(runs["table2"]),
            *pairwise_claims("table_lr", runs["table_lr"], lr_pairs()),
            *pairwise_claims("table3", runs["table3"], table3_pairs()),
            *pairwise_claims("table_init", runs["table_init"], init_pairs()),
            *pairwise_claims("table_rb", runs["table_rb"], rb_pairs()),
            *pairwise_claims("table_router", runs["table_router"], router_pairs()),
            *table7_claims(runs["table7"]),
            *table8_claims(runs["table8"]), *efficiency_claims(Path(bench_file)), table6_claim(table6)]


def _num(x, fmt="{:.1f}") -> str:
    return "—" if x is None else fmt.format(x)


def to_markdown(claims: list[dict], scale: str) -> str:
    lines = ["# Which of the paper's claims hold", "",
             f"Scale: `{scale}`. Built by `make claims` from the results files only (`results/claims.json` holds "
             "every entry in full).", "",
             "| Claim | Table | Effect ± CI | p | Seeds | Verdict |", "|---|---|---|---|---|---|"]
    for c in claims:
        effect = _num(c["effect"])
        if c["ci"] is not None:
            effect += f" ±{(c['ci'][1] - c['ci'][0]) / 2:.1f} [{c['ci'][0]:.1f}, {c['ci'][1]:.1f}]"
        verdict = c["verdict"] + (f" (missing: {len(c['missing'])} runs)" if c.get("missing") else "")
        seeds = " vs ".join(map(str, c["seeds"])) if isinstance(c.get("seeds"), list) else "—"
        if c.get("n") is not None and c["table"] == "efficiency":  # timings: the trials behind the interval
            seeds = " vs ".join(map(str, c["n"])) + " trials" if isinstance(c["n"], list) else f"{c['n']} trials"
        if c.get("n_runs") and c["table"] == "efficiency":  # judged over the benchmark's runs
            seeds = f"{c['n_runs']} runs"
        lines.append(f"| {c['claim']} | {c['table']} | {effect} | {_num(c['p'], '{:.3g}')} | {seeds} | {verdict} |")
    lines += ["", "Effects are in points, ID-LoRA minus the comparator (efficiency and parameter claims: percent, "
              "see claims.json). The interval is a 95% paired bootstrap over examples and seeds; p is the two-sided "
              "exact paired sign test on per-example scores averaged over seeds. A claim is *supported* if its "
              "interval lies above 0, *contradicted* if below, *not resolved* otherwise or when its runs are missing "
              "or unusable (claims.json names them and why); exact counts (parameters, bytes) have no interval and "
              "are judged by their sign. Timings (efficiency.json's paired trials, percent of the merged model's "
              "time): "
              "ID-LoRA's overhead is contradicted where its interval excludes the paper's +0.5% and is never "
              "supported (the paper gives no margin for an equality); 'faster than' is their overhead minus ID-LoRA's "
              "(the official code's; claims.json also has ours), a bootstrap of the difference of medians; where "
              "efficiency.json holds several runs of the current code, both are judged over runs instead (a "
              "Student-t interval of the runs' medians, '<n> runs'; the latest run's own verdict is in claims.json's "
              "this_run), since a shared machine drifts between runs by more than one run's interval. Seeds: "
              "training runs on each side; where a side has one, its interval covers the examples only, not how "
              "another training seed would land (seeds of one config can differ by more than that interval), so such "
              "a verdict is about that run, not yet about the method."]
    if scale != "paper":
        lines += ["", f"At scale `{scale}` the model is SmolLM2-135M trained on synthetic offline data with small "
                  "budgets: a verdict here is about this pipeline at that scale, not about the paper's 8B models."]
    return "\n".join(lines) + "\n"


def write(claims: list[dict], scale: str, out_dir: str | Path = "results", head: list[str] | None = None,
          extra: dict | None = None) -> list[Path]:
    """claims.json and CLAIMS.md: ``head``, the pre-registered section's lines (``prereg``), between the title and
    these earlier verdicts; ``extra``, its entries in claims.json."""
    out_dir = Path(out_dir)
    md = to_markdown(claims, scale)
    if head:
        title, rest = md.split("\n", 1)
        md = "\n".join([title, "", *head]) + rest
    return [atomic_write_json(out_dir / "claims.json", {"scale": scale, **(extra or {}), "claims": claims}),
            atomic_write_text(out_dir / "CLAIMS.md", md)]
