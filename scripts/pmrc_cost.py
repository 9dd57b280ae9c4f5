"""PMRC preprocessing time and memory per model and backend: ``python scripts/pmrc_cost.py [quick=true]``.

Options (key=value): quick=true (small models: checks the pipeline in seconds), table=true (rebuild the table from
an existing results/bench/pmrc_cost.json without measuring again).

Writes results/bench/pmrc_cost.json (idlora/bench/pmrc_cost.py), then results/tables/table_pmrc_cost.{md,tex,json}
from it (idlora/reports/tables/pmrc_cost.py).
"""

import sys

from idlora.cli import flag, main_guard, parse_overrides

BOOL = ("true", "false")


@main_guard
def main() -> None:
    args = parse_overrides(sys.argv[1:], {"quick": BOOL, "table": BOOL})
    from idlora.reports.tables.pmrc_cost import rebuild_table

    if flag(args, "table"):
        print("wrote " + ", ".join(str(p) for p in rebuild_table()))
        return
    from idlora.bench.pmrc_cost import run

    doc = run(quick=flag(args, "quick"))
    print("wrote " + ", ".join(str(p) for p in rebuild_table()))  # the table from the file just written
    for m, c in doc["models"].items():
        print(f"{m}: reference {c['seconds_reference']:.1f}s, torch {c['seconds_torch']:.1f}s "
              f"({c['seconds_reference'] / max(c['seconds_torch'], 1e-9):.1f}x)")


if __name__ == "__main__":
    main()
