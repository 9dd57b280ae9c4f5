"""PMRC preprocessing time and memory per model and backend: ``python scripts/pmrc_cost.py [--quick]``.

Writes results/bench/pmrc_cost.json and results/tables/table_pmrc_cost.{md,tex,json} (see idlora/pmrc_cost.py).
"""

import sys

from idlora.cli import main_guard


@main_guard
def main() -> None:
    from idlora.errors import ConfigError
    from idlora.pmrc_cost import run

    unknown = [a for a in sys.argv[1:] if a != "--quick"]
    if unknown:
        raise ConfigError(f"unknown argument(s) {unknown}; usage: scripts/pmrc_cost.py [--quick]")
    doc = run(quick="--quick" in sys.argv[1:])
    for m, c in doc["models"].items():
        print(f"{m}: reference {c['seconds_reference']:.1f}s, torch {c['seconds_torch']:.1f}s "
              f"({c['seconds_reference'] / max(c['seconds_torch'], 1e-9):.1f}x)")


if __name__ == "__main__":
    main()
