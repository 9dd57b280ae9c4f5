"""The fair protocol's pilot (claims/protocol.yaml, docs/protocol.md): tuning, final and A/A runs, then the report.

    python scripts/protocol.py stage=tune jobs=2     # every method x lr on the tuning seed (dev loss only)
    python scripts/protocol.py stage=final jobs=2    # the base, then every method x final seed at its chosen (lr, step)
    python scripts/protocol.py stage=aa jobs=2       # LoRA on the A/A seeds
    python scripts/protocol.py stage=report          # results/protocol/pilot/{tuning,pilot}.{md,json}, curves PNG

Each stage launches only runs whose complete results file is missing; stage=final reads the choice from the tuning
runs' files (the report shows it) and refuses while the tuning is incomplete.
"""

import sys

from idlora.cli import main_guard, parse_overrides


@main_guard
def main() -> None:
    from idlora.protocol import choose, load_protocol, load_records
    from idlora.reports.protocol import write_report
    from idlora.runs.tuning import aa_runs, base_run, final_runs, run_missing, tuning_runs

    args = parse_overrides(sys.argv[1:], {"stage": ("tune", "final", "aa", "report"), "jobs": ("1", "2")})
    protocol, jobs = load_protocol(), int(args.get("jobs", 1))
    stage = args.get("stage", "report")
    if stage == "tune":
        run_missing(protocol, tuning_runs(protocol), jobs)
    elif stage in ("final", "aa"):
        choices = choose(protocol, load_records(protocol), protocol["pilot"]["methods"])
        runs = [base_run(protocol), *final_runs(protocol, choices)] if stage == "final" else aa_runs(protocol, choices)
        run_missing(protocol, runs, jobs)
    for path in write_report(protocol):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
