"""One table, three files (docs/DESIGN.md §6): ``tableN.md`` for people, ``tableN.tex`` for the paper, ``tableN.json``.

A table is a list of cells ``{"row", "column", "ours", "paper", "significant", "runs"}``; row and column keys
are those of ``paper_numbers.json``. A measured cell also holds ``ci_low``, ``ci_high`` (its 95% interval, exact),
``n`` (examples) and ``seeds`` (runs averaged). Rendering puts ours and the paper's value side by side in each
cell, ours followed by ± half the interval's width where there is one, marks † where our paired sign test says so,
and writes "—" (no run) where ``ours`` is null.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Callable

from ...files import atomic_write_json, atomic_write_text

NO_RUN = "—"
MEASURED_KEYS = ("ci_low", "ci_high", "n", "seeds")
PM_DECIMALS = 1  # as the metrics are printed


def half_width(cell: dict) -> str:
    """Half the width of the cell's interval, as printed after ±."""
    return f"{(cell['ci_high'] - cell['ci_low']) / 2:.{PM_DECIMALS}f}"


PM_TEX = r"{{\scriptsize$\pm${}}}"


def paper_numbers() -> dict:
    return json.loads(resources.files("idlora").joinpath("resources/paper_numbers.json").read_text())


@dataclass
class Table:
    name: str  # "table6"
    title: str
    scale: str
    rows: list[str]
    columns: list[str]
    cells: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    row_labels: dict[str, str] = field(default_factory=dict)
    column_labels: dict[str, str] = field(default_factory=dict)
    fmt: Callable[[Any], str] = str
    missing_note: str = "no results file for this cell"

    @property
    def heading(self) -> str:
        """"Table 3: …" for the paper's tables; "Beyond the paper (table_init): …" for ours."""
        number = self.name.removeprefix("table")
        return f"Table {number}" if number.isdigit() else f"Beyond the paper ({self.name})"

    def add(self, row: str, column: str, ours, paper=None, significant: bool | None = None, runs=(), **measured):
        """One cell; ``measured`` holds its interval and counts (``ci_low``, ``ci_high``, ``n``, ``seeds``)."""
        unknown = sorted(set(measured) - set(MEASURED_KEYS))
        if unknown:
            raise ValueError(f"unknown cell field(s) {unknown}; valid: {', '.join(MEASURED_KEYS)}")
        self.cells.append({"row": row, "column": column, "ours": ours, "paper": paper,
                           "significant": significant, "runs": list(runs), **measured})

    def cell(self, row: str, column: str) -> dict | None:
        return next((c for c in self.cells if c["row"] == row and c["column"] == column), None)

    def _text(self, c: dict | None, dagger: str, pm: str = " ±{}") -> tuple[str, str]:
        if c is None:
            return NO_RUN, ""
        ours = NO_RUN if c["ours"] is None else self.fmt(c["ours"]) + (dagger if c.get("significant") else "")
        if c["ours"] is not None and c.get("ci_low") is not None:
            ours += pm.format(half_width(c))
        paper = "" if c["paper"] is None else str(c["paper"])
        return ours, paper

    def to_markdown(self) -> str:
        has_paper = any(c["paper"] is not None for c in self.cells)
        head = [f"# {self.heading}: {self.title}", "",
                f"Scale: `{self.scale}`. " + ("Each cell: ours / paper." if has_paper else "Ours only: the paper has no numbers here."), ""]
        cols = [self.column_labels.get(c, c) for c in self.columns]
        lines = ["| | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
        for r in self.rows:
            cells = []
            for col in self.columns:
                ours, paper = self._text(self.cell(r, col), "†")
                cells.append(f"{ours} / {paper}" if paper else ours)
            lines.append(f"| {self.row_labels.get(r, r)} | " + " | ".join(cells) + " |")
        notes = [""] + [f"{i + 1}. {n}" for i, n in enumerate(self.notes)] if self.notes else []
        missing = sum(1 for r in self.rows for c in self.columns if (x := self.cell(r, c)) is None or x["ours"] is None)
        if missing:
            notes.append(f"\n{NO_RUN}: {self.missing_note} ({missing} cells).")
        return "\n".join(head + lines + notes) + "\n"

    def to_latex(self) -> str:
        def esc(s: str) -> str:
            return str(s).replace("_", r"\_").replace("%", r"\%").replace("#", r"\#").replace("&", r"\&")

        cols = [esc(self.column_labels.get(c, c)) for c in self.columns]
        out = [r"\begin{table}[t]", r"\centering", r"\small", r"\begin{tabular}{l" + "r" * len(cols) + "}",
               r"\toprule", " & ".join([""] + cols) + r" \\", r"\midrule"]
        for r in self.rows:
            cells = []
            for col in self.columns:
                ours, paper = self._text(self.cell(r, col), r"$^\dagger$", pm=PM_TEX)
                ours = "--" if ours == NO_RUN else ours
                cells.append(esc(ours).replace(r"\$", "$")
                             + (f" ({esc(paper)})" if paper else ""))
            out.append(" & ".join([esc(self.row_labels.get(r, r))] + cells) + r" \\")
        out += [r"\bottomrule", r"\end{tabular}",
                r"\caption{" + esc(self.title) + f" (scale: {esc(self.scale)}; ours, paper in parentheses)." + "}",
                r"\label{tab:" + self.name + "}", r"\end{table}"]
        return "\n".join(out) + "\n"

    def to_json(self) -> dict:
        return {"table": self.name, "title": self.title, "scale": self.scale, "rows": self.rows,
                "columns": self.columns, "cells": self.cells, "notes": self.notes}

    def write(self, out_dir: str | Path) -> list[Path]:
        out_dir = Path(out_dir)
        return [atomic_write_text(out_dir / f"{self.name}.md", self.to_markdown()),
                atomic_write_text(out_dir / f"{self.name}.tex", self.to_latex()),
                atomic_write_json(out_dir / f"{self.name}.json", self.to_json())]
