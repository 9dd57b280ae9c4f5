"""Which of the paper's claims hold, from results files only: ``python scripts/make_claims.py scale=mini``.

Options (key=value): scale=mini|paper|tiny (default mini), results=DIR (run records, default results/runs),
bench=FILE (default results/bench/efficiency.json), out=DIR (default results: writes claims.json and CLAIMS.md).
"""

import sys

from idlora.cli import main_guard, parse_overrides

OWN = {"scale": ("mini", "paper", "tiny"), "results": None, "bench": None, "out": None}


@main_guard
def main() -> None:
    args = parse_overrides(sys.argv[1:], OWN)
    from idlora.reports.claims import build_claims, preregistered, table_runs, write

    scale, results = args.get("scale", "mini"), args.get("results", "results/runs")
    runs = table_runs(scale, results)
    claims = build_claims(scale, results, args.get("bench", "results/bench/efficiency.json"), runs=runs)
    for path in write(claims, scale, args.get("out", "results"), tests=preregistered(runs, results)):
        print(f"wrote {path}")
    counts = {v: sum(c["verdict"] == v for c in claims) for v in ("supported", "contradicted", "not resolved")}
    print(", ".join(f"{n} {v}" for v, n in counts.items()))


if __name__ == "__main__":
    main()
