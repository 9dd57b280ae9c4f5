"""Retiring the pre-protocol mini runs as the tables are regenerated (issue 37): moved, never deleted.

    archive(protocol, results="results", scale="mini")   # -> the paths moved or copied into the archive

A run made before the fair protocol (in ``results/runs``) is archived once every table that reads it is regenerated
(``claims/protocol.yaml``'s ``regenerated``): the tables that read a run are those whose rows it fills or serves
(``experiments.served_runs``); a run that a table not regenerated yet still reads stays where it is. Its
per-example file and diff move with it. The regenerated tables' files as they were (``results/tables/<table>.*``)
are copied beside them, and the claims as they were before the first table changed them, so that what was
committed under the old protocol can still be traced to its runs. ``ARCHIVE`` says in its README what that protocol
was and why it was replaced.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ..experiments import RUN_TABLES, served_runs
from ..files import atomic_write_text
from ..regeneration import is_regenerated

ARCHIVE = "archive/mini-protocol-v2"
README = """# Mini runs of the second protocol (2026-12-01 to 2026-12-07), kept for the record

These runs filled the mini tables before the fair protocol (docs/protocol.md): every adapter at one learning rate
(chosen on LoRA alone), a fixed step budget, one seed for most comparators (three for ID-LoRA and LoRA in Tables
1-3 and 7), no dev split, no tuning budget for the other methods, no multiplicity control. A verdict from them was
a verdict about that protocol as much as about the methods, which is why the tables are rerun under the fair one
(issue 37), table by table.

A run moves here once every table that reads it has been regenerated (`python scripts/protocol.py stage=archive`,
`idlora/runs/archive.py`); `tables/` holds those tables as they were, `CLAIMS.md` and `claims.json` the claims as
they were before the first regenerated table changed them. No current table or claim reads this directory.
"""


def readers(scale: str = "mini") -> dict[str, set[str]]:
    """run id -> the tables that read its results file (their rows' runs, or runs it serves)."""
    out: dict[str, set[str]] = {}
    for table in RUN_TABLES:
        for _, serving, _ in served_runs(table, scale):
            out.setdefault(serving.config().run_id, set()).add(table)
    return out


def archivable(protocol: dict, scale: str = "mini") -> list[str]:
    """The run ids every one of whose reading tables is regenerated."""
    return sorted(run_id for run_id, tables in readers(scale).items()
                  if all(is_regenerated(protocol, t, scale) for t in tables))


def archive(protocol: dict, results: str | Path = "results", scale: str = "mini") -> list[Path]:
    """Move the archivable runs' files from ``results/runs`` to ``results/ARCHIVE/runs``; copy the regenerated
    tables' files and (once) the claims into the archive; write its README once."""
    results = Path(results)
    target = results / ARCHIVE
    (target / "runs").mkdir(parents=True, exist_ok=True)
    moved = []
    for run_id in archivable(protocol, scale):
        for suffix in (".json", ".examples.json", ".diff"):
            src = results / "runs" / f"{run_id}{suffix}"
            if src.exists():
                moved.append(Path(shutil.move(src, target / "runs" / src.name)))
    (target / "tables").mkdir(exist_ok=True)
    for table in (t for t in RUN_TABLES if is_regenerated(protocol, t, scale)):
        for src in sorted((results / "tables").glob(f"{table}.*")):
            if not (target / "tables" / src.name).exists():
                moved.append(Path(shutil.copy2(src, target / "tables" / src.name)))
    for name in ("CLAIMS.md", "claims.json"):
        if (results / name).exists() and not (target / name).exists():
            moved.append(Path(shutil.copy2(results / name, target / name)))
    if not (target / "README.md").exists():
        moved.append(atomic_write_text(target / "README.md", README))
    return moved
