"""Download the wheels ``make gpu-check`` installs on a machine without a package index: ``make wheels``
(``python scripts/wheels.py [python=3.11] [dest=wheels] [all=1]``; see idlora/runs/wheels.py for what and why)."""

import subprocess
import sys
from pathlib import Path

from idlora.cli import main_guard, parse_overrides


@main_guard
def main(argv) -> None:
    from idlora.runs.wheels import pip_commands

    args = parse_overrides(argv, {"python": None, "dest": None, "all": ("0", "1")})
    dest = args.get("dest", "wheels")
    for cmd in pip_commands(dest, args.get("python", "3.11"), keep_all=args.get("all") == "1"):
        subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *cmd], check=True)
    files = sorted(Path(dest).glob("*.whl"))
    print(f"{len(files)} wheels in {dest}/: {sum(f.stat().st_size for f in files) / 2**20:.1f} MiB")


if __name__ == "__main__":
    main(sys.argv[1:])
