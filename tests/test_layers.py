"""The package's layering (pyproject's [tool.importlinter]): stages import only downwards, no sibling modules or
packages import each other round a cycle, the reports import nothing that trains, evaluates, launches, analyses
models or benchmarks, and the benchmarks do not import the reports. import-linter is in the dev extra, so this always
runs."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept():
    exe = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    proc = subprocess.run([exe, "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": str(REPO), "PATH": str(Path(sys.executable).parent)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Contracts: 4 kept, 0 broken." in proc.stdout
    assert "Reports read files only" in proc.stdout and "The benchmarks do not import the reports" in proc.stdout
