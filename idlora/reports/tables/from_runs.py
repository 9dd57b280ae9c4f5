"""Tables 1, 2, 3, 7 and 8, built only from results files (``results/runs/<run_id>.json``).

The runs of a table are listed in ``experiments/<table>.yaml``; each names the table row it fills. A run's
results file is used only if it exists and its stored config equals the config the list asks for (a file from
another config, or an older schema, is reported and left out: the cell shows "—", never a mismatched number).
Cells hold our value beside the paper's; † marks a Wilcoxon signed-rank test of ID-LoRA against LoRA on
paired per-example scores with p < 0.05 and ID-LoRA ahead (docs/DESIGN.md §3).
"""

from __future__ import annotations

from pathlib import Path

import yaml
from omegaconf import OmegaConf

from ...config import compose
from ...errors import ConfigError
from ...methods import TABLE_ORDER, table_label
from ...runs.launch import Run
from .render import Table, paper_numbers

EXPERIMENTS_DIR = Path(__file__).resolve().parents[3] / "experiments"
# metric key -> (benchmark whose per-example scores it is computed from, the per-example field)
METRIC_SOURCE = {
    "gsm8k": ("gsm8k", "score"), "mmlu": ("mmlu", "score"), "cqa": ("cqa", "score"),
    "hexphi_refusal": ("hexphi", "score"),
    "humaneval_pass@1": ("humaneval", "pass@1"), "humaneval_pass@5": ("humaneval", "pass@5"),
    "humaneval_pass@10": ("humaneval", "pass@10"),
}
LABELS = {**{m: table_label(m) for m in TABLE_ORDER}, "llama3_8b": "LLaMA-3-8B", "mistral_7b": "Mistral-7B"}
COLUMN_LABELS = {"params_pct": "# Params (%)", "gsm8k": "GSM8K", "mmlu": "MMLU", "cqa": "CQA",
                 "humaneval_pass@1": "HumanEval P@1", "humaneval_pass@5": "P@5", "humaneval_pass@10": "P@10",
                 "hexphi_refusal": "HEx-PHI"}


def experiment_list(table: str) -> dict:
    path = EXPERIMENTS_DIR / f"{table}.yaml"
    if not path.exists():
        raise ConfigError(f"no experiment list {path}")
    doc = yaml.safe_load(path.read_text())
    doc["runs"] = [_run(dict(r)) for r in doc["runs"]]
    return doc


def _run(entry: dict) -> Run:
    """A list entry (row, experiment, method, overrides, run_tag) as a :class:`Run`; ``run_tag`` is its last
    override. The scale is the table's, set with ``Run.at``."""
    tag = entry.pop("run_tag", "")
    entry["overrides"] = [*entry.get("overrides", []), *([f"run_tag={tag}"] if tag else [])]
    if "row" not in entry:
        raise ConfigError(f"experiment list entry {entry} names no row")
    return Run(**entry)


def load_result(path: Path, expected_config: dict) -> tuple[dict | None, str | None]:
    """(record, None) if usable, else (None, why not): the results file's one rule, ``results.check_record``."""
    from ...results import check_record

    return check_record(path, expected_config)


def per_example_scores(record: dict, results_dir: Path, metric: str) -> dict[str, float] | None:
    from ...results import load_per_example

    bench, key = METRIC_SOURCE[metric]
    rows = load_per_example(record, bench, results_dir)
    if rows is None:
        return None
    return {str(r["id"]): float(r[key]) for r in rows if key in r}


def build(table_name: str, scale: str, results_dir: str | Path = "results/runs",
          overrides: list[str] | None = None) -> Table:
    """The table from results files; ``overrides`` are those its runs were trained with (e.g. local copies)."""
    results_dir = Path(results_dir)
    spec = experiment_list(table_name)
    # the paper's tables take title and columns from paper_numbers.json; a table beyond the paper names its own
    paper = paper_numbers().get(table_name) or {"title": spec["title"], "columns": spec["columns"], "rows": {}}
    columns = list(paper["columns"])
    nested = table_name in ("table1", "table2")  # rows keyed <model>/<method>
    rows = list(dict.fromkeys(r.row for r in spec["runs"]))

    records: dict[str, list[dict]] = {r: [] for r in rows}
    problems, run_ids = [], {r: [] for r in rows}
    for run in spec["runs"]:
        cfg = compose(run.at(scale, overrides or ()).args())
        run_ids[run.row].append(cfg.run_id)
        record, why = load_result(results_dir / f"{cfg.run_id}.json", OmegaConf.to_container(cfg, resolve=True))
        if why:
            problems.append(why)
        if record is not None:
            records[run.row].append(record)

    def paper_value(row: str, col: str):
        if nested:
            model, method = row.split("/")
            return paper["rows"].get(model, {}).get(method, {}).get(col)
        return paper["rows"].get(row, {}).get(col)

    def ours(row: str, col: str):
        for rec in records[row]:
            if col == "params_pct":
                return round(100.0 * rec["trainable_params"] / rec["total_params"], 2)
            if col in rec.get("metrics", {}):
                return round(float(rec["metrics"][col]), 1)
        return None

    def label(row: str) -> str:
        if nested:
            model, method = row.split("/")
            return f"{LABELS[model]} {LABELS[method]}"
        return row

    table = Table(name=table_name, title=paper["title"], scale=scale, rows=rows, columns=columns,
                  row_labels={r: label(r) for r in rows}, column_labels=COLUMN_LABELS,
                  fmt=str)  # ours() rounds: params 2 decimals, metrics 1 (6.2, not 6.20)
    sig = spec.get("significance")
    for row in rows:
        for col in columns:
            significant = None
            if sig and nested and row.endswith("/" + sig["method"]) and col in METRIC_SOURCE:
                significant = _significant(records, row, row.replace(sig["method"], sig["against"]), col,
                                           results_dir)
            table.add(row, col, ours(row, col), paper=paper_value(row, col), significant=significant,
                      runs=run_ids[row])
    if scale != "paper":
        table.notes.append(f"Scale `{scale}`: SmolLM2-135M on synthetic offline data with small step and example "
                           "budgets. These are real measurements of the pipeline, not comparable to the paper's "
                           "numbers in absolute terms.")
    table.notes.append("# Params (%): our exact trainable parameters over the model's total parameters (ID-LoRA's "
                       "router included); the paper's percentages do not follow from its Table 6 (DESIGN.md §1).")
    if sig:
        table.notes.append("†: Wilcoxon signed-rank test, ID-LoRA vs LoRA on paired per-example scores, p < 0.05 "
                           "with ID-LoRA ahead (our runs); the paper's † are listed in paper_numbers.json.")
    for p in problems:
        table.notes.append(f"Not used: {p}")
    return table


def _significant(records, row, against_row, col, results_dir) -> bool | None:
    from ..stats import significant

    if not records.get(against_row) or not records.get(row):
        return None
    a = next((s for rec in records[row] if (s := per_example_scores(rec, results_dir, col))), None)
    b = next((s for rec in records[against_row] if (s := per_example_scores(rec, results_dir, col))), None)
    if not a or not b:
        return None
    ids = sorted(set(a) & set(b))
    if len(ids) < 2:
        return None
    return bool(significant([a[i] for i in ids], [b[i] for i in ids]))
