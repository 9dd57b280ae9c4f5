"""Which of the paper's claims hold, from results files only: ``python scripts/make_claims.py scale=mini``.

Options (key=value): scale=mini|paper|tiny (default mini), results=DIR (run records, default results/runs),
bench=FILE (default results/bench/efficiency.json), out=DIR (default results: writes claims.json, CLAIMS.md and
claims_primary.png, the primary effects with their intervals).
"""

import sys

from idlora.cli import main_guard, parse_overrides

OWN = {"scale": ("mini", "paper", "tiny"), "results": None, "bench": None, "out": None}


@main_guard
def main() -> None:
    args = parse_overrides(sys.argv[1:], OWN)
    from idlora.reports.prereg import make_claims

    out = args.get("out", "results")
    for path in make_claims(args.get("scale", "mini"), args.get("results", "results/runs"),
                            args.get("bench", "results/bench/efficiency.json"), out):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
