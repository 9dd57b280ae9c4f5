"""Every generated file under ``results/`` rebuilt from the committed results files alone: no run is trained or scored.

    rebuild(results="results", out=DIR)   # the tables, figures, claims, pilots' reports and results page, into DIR
    differences(results, out)             # the generated files whose rebuilt bytes differ from the committed ones

``make rebuild`` writes into a scratch directory and lists the differences (none: the committed results are what the
commands make from the committed runs); the slow test ``tests/test_rebuild.py`` asserts there are none. What each
file is built from:

- ``tables/<table>.{md,tex,json}``: ``reports.tables.build_table`` (runs: ``runs/``; Tables 4-5: the configs and the
  protocol's tuning runs; Table 6: adapters on meta models); ``table_pmrc_cost``: ``bench/pmrc_cost.json``.
  (``memory_plan.md`` is not rebuilt: ``make memory_plan`` computes it with its JSON, from no results file.)
- ``figures/``: fig3 (``bench/efficiency.json``), fig4 (Table 7's runs), fig_budget (``budget/``), fig_rank
  (``figures/fig_rank.json``), fig_router (the one file in ``router/``): the analysis files behind the last two
  (their stages load adapters) are read, not rebuilt.
- ``claims.json``, ``CLAIMS.md``, ``claims_primary.png``: ``make claims``; ``README.md``: ``make results_page``.
- ``pilot/real_data.*``: the real-data pilot (``pilot/runs/``); ``protocol/pilot/*``: the fair protocol's pilot.
"""

from __future__ import annotations

from pathlib import Path

from ..protocol import load_protocol
from . import pilot, results_page
from .effective_rank import fig_rank
from .figures import fig3, fig4, fig_budget
from .prereg import make_claims
from .protocol import write_report
from .router import fig_router
from .tables import TABLES, build_table
from .tables.pmrc_cost import rebuild_table


def _tables(src: Path, out: Path, scale: str) -> list[Path]:
    paths = []
    for name in TABLES:
        paths += build_table(name, scale, str(src / "runs")).write(out / "tables")
    return [*map(Path, paths), *map(Path, rebuild_table(src / "bench" / "pmrc_cost.json", out / "tables"))]


def _figures(src: Path, out: Path, scale: str) -> list[Path]:
    figures = out / "figures"
    router = sorted((src / "router").glob("*.json"))
    return [fig3(src / "bench" / "efficiency.json", figures / "fig3.png"),
            fig4(scale, src / "runs", figures / "fig4.png"),
            fig_budget(src / "budget", figures / "fig_budget.png", scale),
            fig_rank(src / "figures" / "fig_rank.json", figures / "fig_rank.png"),
            *([fig_router(router[0], figures / "fig_router.png")] if len(router) == 1 else [])]


def _pilots(src: Path, out: Path) -> list[Path]:
    protocol = load_protocol()
    pilot_dir = Path(protocol["pilot"]["results_dir"])  # results/protocol/pilot: the same place under ``out``
    return [*pilot.write(pilot.summarise(src / "pilot" / "runs"), out / "pilot"),
            *write_report(protocol, out / pilot_dir.relative_to("results"))]


def rebuild(results: str | Path = "results", out: str | Path = "build/results", scale: str = "mini") -> list[Path]:
    """Every generated file of ``results`` rebuilt into ``out`` from ``results``'s runs and measurement files."""
    src, out = Path(results), Path(out)
    paths = [*_tables(src, out, scale), *_figures(src, out, scale),
             *make_claims(scale, src / "runs", src / "bench" / "efficiency.json", out), *_pilots(src, out)]
    return [*paths, results_page.write(results_page.build(src), out)]  # as `make results_page` reads results/


def differences(results: str | Path, out: str | Path, rebuilt: list[Path]) -> list[str]:
    """The rebuilt files (paths relative to ``out``) that are missing from ``results`` or differ from it in bytes."""
    src, out = Path(results), Path(out)
    diff = []
    for path in rebuilt:
        rel = Path(path).resolve().relative_to(out.resolve())
        committed = src / rel
        if not committed.exists() or committed.read_bytes() != Path(path).read_bytes():
            diff.append(str(rel))
    return sorted(diff)
