"""The fair protocol's pilot (claims/protocol.yaml, docs/protocol.md): tuning, final and A/A runs, then the report.

    python scripts/protocol.py stage=tune jobs=2     # every method x lr on the tuning seed (dev loss only)
    python scripts/protocol.py stage=final jobs=2    # the base, then every method x final seed at its chosen (lr, step)
    python scripts/protocol.py stage=aa jobs=2       # LoRA on the A/A seeds
    python scripts/protocol.py stage=horizon jobs=2  # the horizon check: does the step budget bind the comparison?
    python scripts/protocol.py stage=report          # results/protocol/pilot/{tuning,pilot}.{md,json}, curves PNG

    python scripts/protocol.py table=table3 stage=tune jobs=2    # a table's regeneration: its methods' tuning,
    python scripts/protocol.py table=table3 stage=final jobs=2   # then its bases and every arm on its seeds
    python scripts/protocol.py stage=archive     # move the old runs that only regenerated tables read to the archive

Each stage launches only runs whose complete results file is missing; stage=final reads the choice from the tuning
runs' files (the report shows it) and refuses while the tuning is incomplete.
"""

import sys

from idlora.cli import main_guard, parse_overrides


@main_guard
def main() -> None:
    from idlora.experiments import RUN_TABLES
    from idlora.protocol import load_protocol, load_records
    from idlora.reports.protocol import write_report
    from idlora.runs.tuning import STAGES, run_missing, stage_runs

    args = parse_overrides(sys.argv[1:], {"stage": (*STAGES, "archive", "report"), "jobs": ("1", "2"),
                                          "table": RUN_TABLES})
    protocol, stage = load_protocol(), args.get("stage", "report")
    if stage == "archive":
        from idlora.runs.archive import archive

        moved = archive(protocol)
        print(f"{len(moved)} file(s) moved or copied into results/archive/mini-protocol-v2/")
        return
    if stage != "report":
        runs = stage_runs(protocol, stage, load_records(protocol), args.get("table"))
        run_missing(protocol, runs, int(args.get("jobs", 1)))
    for path in write_report(protocol):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
