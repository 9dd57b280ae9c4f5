"""PMRC preprocessing time and memory per model and backend: ``python scripts/pmrc_cost.py [--quick]``.

``--table`` rebuilds the table from an existing results/bench/pmrc_cost.json without measuring again.

Writes results/bench/pmrc_cost.json and results/tables/table_pmrc_cost.{md,tex,json} (see idlora/bench/pmrc_cost.py).
"""

import sys

from idlora.cli import main_guard


@main_guard
def main() -> None:
    from idlora.errors import ConfigError
    from idlora.bench.pmrc_cost import rebuild_table, run

    unknown = [a for a in sys.argv[1:] if a not in ("--quick", "--table")]
    if unknown:
        raise ConfigError(f"unknown argument(s) {unknown}; usage: scripts/pmrc_cost.py [--quick | --table]")
    if "--table" in sys.argv[1:]:
        print("wrote " + ", ".join(str(p) for p in rebuild_table()))
        return
    doc = run(quick="--quick" in sys.argv[1:])
    for m, c in doc["models"].items():
        print(f"{m}: reference {c['seconds_reference']:.1f}s, torch {c['seconds_torch']:.1f}s "
              f"({c['seconds_reference'] / max(c['seconds_torch'], 1e-9):.1f}x)")


if __name__ == "__main__":
    main()
