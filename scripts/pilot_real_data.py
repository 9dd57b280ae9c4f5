"""The real-data pilot (docs/data.md): base and LoRA per real task, scored on the held-out real test splits.

    python scripts/pilot_real_data.py                    # train and score what is missing, then the summary
    python scripts/pilot_real_data.py tasks=cqa,mmlu     # some tasks only
    python scripts/pilot_real_data.py report_only=true   # the summary from results/pilot/runs only

Writes results/pilot/runs/*.json (one per run) and results/pilot/real_data.{md,json}.
"""

import sys

from idlora.cli import main_guard, parse_overrides


@main_guard
def main() -> None:
    from idlora.reports.pilot import summarise, write
    from idlora.runs.pilot import TASKS, run_pilot

    args = parse_overrides(sys.argv[1:], {"tasks": None, "report_only": ("true", "false")})
    tasks = tuple(args["tasks"].split(",")) if "tasks" in args else tuple(TASKS)
    if args.get("report_only") != "true":
        run_pilot(tasks)
    for path in write(summarise()):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
