"""Committed results equal what the commands rebuild from the committed runs (issue 37): every table, figure, claims
file, pilot report and the results page, rebuilt by ``make rebuild``'s script into a scratch directory, byte for
byte; and the comparison names a stale or missing file."""

import subprocess
import sys
from pathlib import Path

import pytest

from idlora.reports.rebuild import differences

ROOT = Path(__file__).resolve().parents[1]


def test_differences_name_a_stale_and_a_missing_committed_file_and_nothing_else(tmp_path):
    committed, rebuilt = tmp_path / "results", tmp_path / "build"
    for root, text in ((committed, "same"), (rebuilt, "same")):
        (root / "tables").mkdir(parents=True)
        (root / "tables" / "t.md").write_text(text)
    (committed / "CLAIMS.md").write_text("old verdicts\n")
    (rebuilt / "CLAIMS.md").write_text("new verdicts\n")
    (rebuilt / "fig.png").write_bytes(b"\x89PNG")
    paths = [rebuilt / "tables" / "t.md", rebuilt / "CLAIMS.md", rebuilt / "fig.png"]
    assert differences(committed, rebuilt, paths) == ["CLAIMS.md", "fig.png"]


@pytest.mark.slow
def test_the_committed_results_are_what_make_rebuild_makes_from_the_committed_runs(tmp_path):
    out = tmp_path / "results"
    done = subprocess.run([sys.executable, "scripts/rebuild.py", f"out={out}"], cwd=ROOT, capture_output=True,
                          text=True, timeout=1800)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert " 0 differ from results/" in done.stdout
    rebuilt = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert {"tables/table1.md", "tables/table8.json", "figures/fig4.png", "CLAIMS.md", "claims.json",
            "claims_primary.png", "README.md", "protocol/pilot/pilot.md", "pilot/real_data.md"} <= rebuilt


def test_make_rebuild_refuses_to_empty_the_results_it_compares_against(tmp_path):
    committed = tmp_path / "results"
    (committed / "tables").mkdir(parents=True)
    (committed / "tables" / "t.md").write_text("kept")
    for out in (committed, tmp_path):
        done = subprocess.run([sys.executable, "scripts/rebuild.py", f"results={committed}", f"out={out}"], cwd=ROOT,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode != 0 and "would empty the committed" in done.stderr + done.stdout
    assert (committed / "tables" / "t.md").read_text() == "kept"
