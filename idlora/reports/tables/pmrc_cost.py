"""The table of PMRC's preprocessing cost (``table_pmrc_cost.{md,tex,json}``), from the benchmark's results file
``results/bench/pmrc_cost.json`` (written by ``idlora.bench.pmrc_cost``, ``make pmrc_cost``)."""

from __future__ import annotations

import json
from pathlib import Path

from ...errors import ConfigError
from ...pmrc import DEFAULT_RESTARTS
from .render import Table


def rebuild_table(path: str | Path = "results/bench/pmrc_cost.json", out_tables: str | Path = "results/tables"):
    """The table again from an existing results file, without measuring (``scripts/pmrc_cost.py table=true``)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"no {path}; run `make pmrc_cost` first.")
    try:
        doc = json.loads(path.read_text())
        doc["models"], doc["note"]
    except (ValueError, KeyError, TypeError):
        raise ConfigError(f"{path} is not a pmrc_cost results file; rerun `make pmrc_cost`.") from None
    return write_table(doc, out_tables, source=str(path))


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.5f}" if 0.5 < v < 2 else f"{v:,.1f}"  # an objective ratio shows its 0.01% digits
    return f"{v:,}" if isinstance(v, int) else str(v)


def write_table(doc: dict, out_tables: str | Path = "results/tables", source: str = "results/bench/pmrc_cost.json"):
    """``table_pmrc_cost.{md,tex,json}`` from a ``pmrc_cost.json`` document (``scripts/pmrc_cost.py table=true``)."""
    cols = ["matrices", "r", "restarts_torch", "seconds_reference", "seconds_torch", "torch_timing", "speedup",
            "objective_ratio_max", "peak_mib_reference", "peak_mib_torch"]
    t = Table(name="table_pmrc_cost", title="PMRC preprocessing cost per model and backend (k=4; r=128 on the paper's "
              "models, the mini r on SmolLM2)",
              scale="tiny shapes (quick)" if doc.get("quick") else "measured on this machine",
              rows=list(doc["models"]), columns=cols, missing_note="not measured",
              fmt=_fmt)
    for m, c in doc["models"].items():
        vals = dict(c, speedup=c["seconds_reference"] / max(c["seconds_torch"], 1e-9))
        vals["restarts_torch"] = c.get("restarts_torch") or DEFAULT_RESTARTS["torch"]  # null: the backend's default
        for col in cols:
            t.add(m, col, vals.get(col), runs=[source])
    t.notes.append(doc["note"] + " Peak memory: the largest rise of resident memory while clustering one matrix "
                   "(not measured for SmolLM2, clustered in-process on its real weights). Reference: "
                   "k-means-constrained (the paper's); torch: this project's size-constrained k-means "
                   "(method.pmrc_backend), restarts_torch its seeded restarts (method.pmrc_restarts).")
    return t.write(out_tables)
