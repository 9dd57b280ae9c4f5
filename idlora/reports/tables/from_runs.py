"""Tables 1, 2, 3, 7 and 8, built only from results files (``results/runs/<run_id>.json``).

The runs of a table are listed in ``experiments/<table>.yaml`` (read by ``idlora.experiments``); each names the
table row it fills. A run's results file is used only if it exists and its stored config equals the config the list
asks for (a file from another config, or an older schema, is reported and left out: the cell shows "—", never a
mismatched number).
Cells hold our value beside the paper's. A measured cell is the mean over its runs (seeds) of each run's metric,
with a 95% bootstrap interval over seeds and examples (``n`` examples, ``seeds`` runs; ``idlora.stats``); a
run whose metric differs from the mean of its per-example scores is reported and left out. † marks an exact paired
sign test of ID-LoRA against LoRA (per-example scores averaged over seeds) with p < 0.05 and ID-LoRA ahead
(docs/DESIGN.md §3). A run whose results file another, identical run serves (``experiments.served_runs``) is read from
that run's file, and a note says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import OmegaConf

from ... import experiments, regeneration
from ...config import compose
from ...errors import ConfigError
from ...methods import BASE, TABLE_ORDER, table_label
from ...protocol import load_protocol, load_records, made_under_protocol, read_claims, runs_dir
from ...results import check_record, load_per_example, record_path
from ...stats import BOOTSTRAP_REPLICATES, LEVEL, bootstrap_ci, paired_test, seed_mean
from .render import Table, paper_numbers

# metric key -> (benchmark whose per-example scores it is computed from, the per-example field)
METRIC_SOURCE = {
    "gsm8k": ("gsm8k", "score"), "mmlu": ("mmlu", "score"), "cqa": ("cqa", "score"),
    "hexphi_refusal": ("hexphi", "score"), "over_refusal": ("hexphi", "over_refusal"),
    "mbpp": ("mbpp", "score"),
    "humaneval_pass@1": ("humaneval", "pass@1"), "humaneval_pass@5": ("humaneval", "pass@5"),
    "humaneval_pass@10": ("humaneval", "pass@10"),
}
LABELS = {**{m: table_label(m) for m in TABLE_ORDER}, BASE: "Base (untrained)", "llama3_8b": "LLaMA-3-8B",
          "mistral_7b": "Mistral-7B"}
COLUMN_LABELS = {"params_pct": "# Params (%)", "gsm8k": "GSM8K", "mmlu": "MMLU", "cqa": "CQA",
                 "humaneval_pass@1": "HumanEval P@1", "humaneval_pass@5": "P@5", "humaneval_pass@10": "P@10",
                 "hexphi_refusal": "HEx-PHI", "over_refusal": "Over-refusal", "mbpp": "MBPP"}


def load_result(path: Path, expected_config: dict) -> tuple[dict | None, str | None]:
    """(record, None) if usable, else (None, why not): the results file's one rule, ``results.check_record``."""
    return check_record(path, expected_config)


def per_example_scores(record: dict, results_dir: Path, metric: str) -> dict[str, float] | None:
    bench, key = METRIC_SOURCE[metric]
    rows = load_per_example(record, bench, results_dir)
    if rows is None:
        return None
    return {str(r["id"]): float(r[key]) for r in rows if key in r}



# a run's metric is the mean of its per-example scores in percent; equal up to floating-point summation
METRIC_TOLERANCE = 1e-6


@dataclass
class TableRuns:
    """The runs of a table and their usable records, by row (read with :func:`load_runs`)."""

    rows: list[str]
    records: dict[str, list[dict]]
    run_ids: dict[str, list[str]]
    problems: list[str] = field(default_factory=list)
    served: dict[str, str] = field(default_factory=dict)  # row -> the row whose run serves one of its runs
    borrowed: dict[str, list[str]] = field(default_factory=dict)  # row -> runs of earlier tables serving it
    directory: Path = Path("results/runs")  # where the records and their per-example files are


def order_rows(rows: list[str], nested: bool) -> list[str]:
    """Rows in list order, with each model's base row (``<model>/base``, or ``base``) first in its model's block."""
    if not nested:
        return sorted(rows, key=lambda r: r != BASE)
    models = list(dict.fromkeys(r.split("/")[0] for r in rows))
    return [r for m in models for r in sorted((r for r in rows if r.split("/")[0] == m),
                                               key=lambda r: r.split("/")[1] != BASE)]


def load_runs(table_name: str, scale: str, results_dir: str | Path = "results/runs",
              overrides: list[str] | None = None) -> TableRuns:
    """The usable record of each run of the table (the results files' one rule, ``results.check_record``), each read
    from the file of the run that serves it and checked against that run's config: the fair protocol's runs for a
    regenerated table (``regeneration.served_final_runs``, in the protocol's runs directory, never mixed with older
    runs), else the experiment list's (``experiments.served_runs``, in ``results_dir``)."""
    protocol = load_protocol()
    if regeneration.is_regenerated(protocol, table_name, scale):
        results_dir = runs_dir(protocol)
        claims = read_claims()["claims"]  # only the seeds rule reads them: their table, rows and kind
        served = regeneration.served_final_runs(protocol, table_name, load_records(protocol), claims, scale)
    else:
        results_dir, served = Path(results_dir), experiments.served_runs(table_name, scale, overrides)
    spec = experiments.experiment_list(table_name)
    nested = table_name in ("table1", "table2")
    rows = order_rows(list(dict.fromkeys(r.row for r in spec["runs"])), nested)
    out = TableRuns(rows=rows, records={r: [] for r in rows}, run_ids={r: [] for r in rows}, directory=results_dir)
    composed: dict[tuple, object] = {}
    for run, canonical, table in served:
        key = tuple(canonical.args())
        if key not in composed:
            composed[key] = compose(canonical.args())
        cfg = composed[key]
        out.run_ids[run.row].append(cfg.run_id)
        if table != table_name:
            out.borrowed.setdefault(run.row, []).append(f"{table}'s {cfg.run_id}")
        elif canonical is not run and canonical.row != run.row:
            out.served[run.row] = canonical.row
        record, why = load_result(record_path(results_dir, cfg.run_id), OmegaConf.to_container(cfg, resolve=True))
        if why and why not in out.problems:
            out.problems.append(why)
        if record is not None:
            out.records[run.row].append(record)
    return out


def cell_scores(records: list[dict], col: str, results_dir: Path) -> tuple[list[dict], list[dict] | None, list[str]]:
    """(records measuring ``col``, their per-example scores — None if any lacks them —, problems): a record whose
    metric differs from the mean of its per-example scores is a problem and left out, not trusted."""
    used, scores, problems = [], [], []
    for rec in records:
        if col not in rec.get("metrics", {}):
            continue
        s = per_example_scores(rec, results_dir, col) if col in METRIC_SOURCE else None
        if s:
            mean = 100.0 * sum(s.values()) / len(s)
            if not math.isclose(mean, float(rec["metrics"][col]), rel_tol=METRIC_TOLERANCE, abs_tol=METRIC_TOLERANCE):
                problems.append(f"{rec.get('run_id')}: {col} is {rec['metrics'][col]} but the mean of its "
                                f"{len(s)} per-example scores is {mean:g} — re-score the run")
                continue
        used.append(rec)
        scores.append(s)
    return used, (scores if used and all(scores) else None), problems


def measured_cell(records: list[dict], col: str, results_dir: Path) -> tuple[dict, list[str]]:
    """``{"ours", and with per-example scores "ci_low", "ci_high", "n", "seeds"}`` of one cell, and its problems."""
    if col == "params_pct":
        rec = records[0] if records else None
        return {"ours": None if rec is None else round(100.0 * rec["trainable_params"] / rec["total_params"], 2)}, []
    used, scores, problems = cell_scores(records, col, results_dir)
    if not used:
        return {"ours": None}, problems
    cell = {"ours": round(sum(float(r["metrics"][col]) for r in used) / len(used), 1), "seeds": len(used)}
    if scores:
        ci = bootstrap_ci(scores)
        cell.update(ci_low=100.0 * ci["low"], ci_high=100.0 * ci["high"], n=ci["n"])
    return cell, problems


def paired_cell_test(a_records: list[dict], b_records: list[dict], col: str, results_dir: Path) -> dict | None:
    """The paired sign test of two rows' per-example scores on ``col`` (each averaged over its seeds, matched by
    example id), or None without per-example scores on both sides."""
    _, a, _ = cell_scores(a_records, col, results_dir)
    _, b, _ = cell_scores(b_records, col, results_dir)
    if not a or not b:
        return None
    ids = sorted(set.intersection(*(set(s) for s in [*a, *b])))
    if not ids:
        return None
    return paired_test(seed_mean(a, ids), seed_mean(b, ids))


def build(table_name: str, scale: str, results_dir: str | Path = "results/runs",
          overrides: list[str] | None = None) -> Table:
    """The table from results files; ``overrides`` are those its runs were trained with (e.g. local copies)."""
    spec = experiments.experiment_list(table_name)
    # the paper's tables take title and columns from paper_numbers.json; a table beyond the paper names its own
    paper = paper_numbers().get(table_name) or {"title": spec["title"], "columns": spec["columns"], "rows": {}}
    nested = table_name in ("table1", "table2")  # rows keyed <model>/<method>
    runs = load_runs(table_name, scale, results_dir, overrides)
    results_dir = runs.directory  # the protocol's runs directory for a regenerated table

    def paper_value(row: str, col: str):
        if nested:
            model, method = row.split("/")
            return paper["rows"].get(model, {}).get(method, {}).get(col)
        return paper["rows"].get(row, {}).get(col)

    table = Table(name=table_name, title=paper["title"], scale=scale, rows=runs.rows, columns=list(paper["columns"]),
                  row_labels={r: row_label(r, nested, spec.get("labels")) for r in runs.rows}, column_labels=COLUMN_LABELS,
                  fmt=str)  # measured_cell rounds: params 2 decimals, metrics 1 (6.2, not 6.20)
    sig, problems, tests = spec.get("significance"), list(runs.problems), []
    for row in runs.rows:
        for col in table.columns:
            cell, why = measured_cell(runs.records[row], col, results_dir)
            problems += [w for w in why if w not in problems]
            test = None
            if sig and nested and row.endswith("/" + sig["method"]) and col in METRIC_SOURCE:
                against = row.replace(sig["method"], sig["against"])
                test = paired_cell_test(runs.records[row], runs.records.get(against, []), col, results_dir)
            if test is not None:
                tests.append((row, col, test))
            table.add(row, col, cell.pop("ours"), paper=paper_value(row, col),
                      significant=None if test is None else _dagger(test), runs=runs.run_ids[row], **cell)
    _notes(table, scale, runs, sig, tests, problems)
    table.notes += _unmeasured_pass_at_k(runs, table.columns) + _ranks_used(table.title, runs)
    table.notes += unmoved_columns(table, skip=set(runs.served))
    return table


def _disjoint(a: dict, b: dict) -> bool:
    return a["ci_low"] > b["ci_high"] or a["ci_high"] < b["ci_low"]


def unmoved_columns(table: Table, skip=frozenset()) -> list[str]:
    """A note for each metric column in which no trained row of a block (a model's rows) has a 95% interval disjoint
    from the block's base row: the measured reason that column shows no effect of training at this scale. Blocks
    whose base row is in ``skip`` (served by another block's runs) are left to that block's note."""
    blocks: dict[str, list[str]] = {}
    for row in table.rows:
        blocks.setdefault(row.rsplit("/", 1)[0] + "/" if "/" in row else "", []).append(row)
    notes = []
    for prefix, rows in blocks.items():
        base = prefix + BASE
        if base in skip:
            continue
        for col in (c for c in table.columns if c in METRIC_SOURCE):
            b = table.cell(base, col)
            if b is None or b.get("ci_low") is None:
                continue
            trained = [(r, c) for r in rows if r != base and (c := table.cell(r, col)) and c.get("ci_low") is not None]
            if not trained or any(_disjoint(c, b) for _, c in trained):
                continue
            far, c = max(trained, key=lambda rc: abs(rc[1]["ours"] - b["ours"]))

            def show(label, cell):
                return f"{label} {cell['ours']} [{cell['ci_low']:.1f}, {cell['ci_high']:.1f}], n = {cell['n']}"

            notes.append(f"{COLUMN_LABELS.get(col, col)}: no trained row's 95% interval is disjoint from the base "
                         f"row's ({show(table.row_labels[base], b)}; farthest from it: "
                         f"{show(table.row_labels[far], c)}): at this scale and sample size the column does not "
                         "resolve what training changed.")
    return notes


def _unmeasured_pass_at_k(runs: TableRuns, columns: list[str]) -> list[str]:
    """A note for each pass@k column that runs which scored HumanEval could not measure (fewer than k samples)."""
    notes = []
    for col in (c for c in columns if c.startswith("humaneval_pass@")):
        k = int(col.split("@")[1])
        scored = [r for recs in runs.records.values() for r in recs if "humaneval" in r.get("benchmarks", {})]
        samples = sorted({int(r["config"]["eval"]["humaneval_samples"]) for r in scored if col not in r["metrics"]})
        if samples:
            notes.append(f"{COLUMN_LABELS.get(col, col)}: not measured by runs that drew {', '.join(map(str, samples))} "
                         f"sample(s) per problem (eval.humaneval_samples); pass@{k} needs at least {k}.")
    return notes


def _ranks_used(title: str, runs: TableRuns) -> list[str]:
    """A note with the ranks the runs trained with, where the title names the paper's (Table 8: "r=128")."""
    if "r=" not in title:
        return []
    ranks = sorted({int(r["config"]["method"]["r"]) for recs in runs.records.values() for r in recs
                    if r["config"].get("method", {}).get("r") is not None})
    if not ranks:
        return []
    return [f"Rank: the title's r is the paper's; the runs of this table trained with r = "
            f"{', '.join(map(str, ranks))} (method.r in their results files)."]


def row_label(row: str, nested: bool, labels: dict | None = None) -> str:
    """A row's label: "<model> <method>" in Tables 1-2; else the experiment list's ``labels`` entry, else its name."""
    if nested:
        model, method = row.split("/")
        return f"{LABELS[model]} {LABELS[method]}"
    return LABELS[BASE] if row == BASE else (labels or {}).get(row, row)


def _dagger(test: dict, alpha: float = 0.05) -> bool:
    return bool(test["wins"] > test["losses"] and test["p"] < alpha)


SOURCE_LABELS = {"synthetic": "synthetic (project-made mini sets)", "hub": "the hub's data",
                 "real": "real, the held-out test split of the packaged set (docs/data.md)"}


def data_sources_note(runs: TableRuns, columns) -> str:
    """Which data each column scored, from its runs' records (a benchmark's ``data_source``; a record from before it
    was recorded scored its config's ``eval.source``, which at mini was always synthetic)."""
    sources: dict[str, set] = {}
    for records in runs.records.values():
        for rec in records:
            for col in columns:
                bench = METRIC_SOURCE.get(col, (None,))[0]
                entry = (rec.get("benchmarks") or {}).get(bench)
                if entry is not None:
                    source = entry.get("data_source") or rec["config"]["eval"].get("source") or "hub"
                    sources.setdefault(col, set()).add(source)
    by_source: dict[str, list[str]] = {}
    for col in columns:
        if col in sources:
            by_source.setdefault(" and ".join(SOURCE_LABELS.get(s, s) for s in sorted(sources[col])), []).append(
                COLUMN_LABELS.get(col, col))
    if len(by_source) == 1:
        return f"Data: every column {next(iter(by_source))}."
    return "Data: " + "; ".join(f"{', '.join(cols)}: {label}" for label, cols in by_source.items()) + "."


def protocol_note(table: Table, runs: TableRuns) -> str:
    """What the fair protocol fixed for a table made of its runs: each method's dev-chosen lr and steps, and the
    seeds of each row."""
    chosen = sorted({(r["method"], r["train"].get("lr") or 0.0, r["train"].get("steps") or 0)
                     for rs in runs.records.values() for r in rs if r["method"] != "base"})
    seeds = "; ".join(f"{table.row_labels.get(row, row)} {len(runs.records[row])}" for row in runs.rows
                      if runs.records[row])
    return ("Protocol: every run was made under the fair protocol (docs/protocol.md), in " + str(runs.directory)
            + ": each method at the lr and step count its dev loss chose on the tuning seed ("
            + "; ".join(f"{table_label(m)} {lr:g} for {steps} steps" for m, lr, steps in chosen)
            + "), its final seeds fixed in advance by the pre-registered claims (seeds a row: " + seeds + ").")


def _notes(table: Table, scale: str, runs: TableRuns, sig, tests: list, problems: list[str]) -> None:
    old = sorted({r["run_id"] for rs in runs.records.values() for r in rs
                  if r["method"] != "base" and not made_under_protocol(r)})
    trained = [r for rs in runs.records.values() for r in rs if r["method"] != "base"]
    if trained and not old:
        table.notes.append(protocol_note(table, runs))
    if old:
        table.notes.append(f"Protocol: {len(old)} of this table's runs were made before the fair protocol "
                           "(docs/protocol.md), under the mini protocol: one lr for every adapter, chosen on LoRA, a "
                           "fixed step budget, no dev split, one seed for most comparators. Read them as measurements "
                           "of that protocol, not verdicts on the methods: results/CLAIMS.md's pre-registered claims "
                           "judge such runs invalid, and the regeneration under the fair protocol replaces them.")
    if scale != "paper":
        table.notes.append(f"Scale `{scale}`: SmolLM2-135M offline with small step and example budgets. These are "
                           "real measurements of the pipeline, not comparable to the paper's numbers in absolute "
                           "terms. " + data_sources_note(runs, table.columns))
    table.notes.append("# Params (%): our exact trainable parameters over the model's total parameters (ID-LoRA's "
                       "router included); the paper's percentages do not follow from its Table 6 (DESIGN.md §1).")
    table.notes.append(f"±: half the width of a {LEVEL:.0%} bootstrap interval ({BOOTSTRAP_REPLICATES:,} seeded "
                       "replicates resampling the runs' seeds, then the examples); a cell is the mean over its seeds "
                       f"(`{table.name}.json`: ci_low, ci_high, n examples, seeds).")
    if sig:
        counts = "; ".join(f"{table.row_labels[r]} {COLUMN_LABELS.get(c, c)}: n = {t['n_pairs']}, p = {t['p']:.3g}"
                           for r, c, t in tests)
        table.notes.append("†: exact paired sign test (two-sided binomial; for 0/1 scores the exact McNemar test), "
                           "ID-LoRA vs LoRA on per-example scores, each method's score averaged over its seeds, ties "
                           "dropped; p < 0.05 with ID-LoRA ahead (our runs; the paper's † are listed in "
                           f"paper_numbers.json). n = non-tied pairs" + (f" ({counts})." if counts else "."))
    if runs.served:
        served = sorted(runs.served)
        table.notes.append(f"Rows {', '.join(table.row_labels[r] for r in served)} use the runs of rows "
                           f"{', '.join(table.row_labels[runs.served[r]] for r in served)}: identical in effect at "
                           "this scale (same model and config).")
    if runs.borrowed:
        table.notes.append("Runs of earlier tables, identical in effect at this scale (same model and config), serve "
                           + "; ".join(f"{table.row_labels[r]} ({', '.join(ids)})" for r, ids in runs.borrowed.items())
                           + ".")
    for p in problems:
        table.notes.append(f"Not used: {p}")
