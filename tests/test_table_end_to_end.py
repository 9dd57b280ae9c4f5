"""One table end to end at tiny scale (slow): two `make_table` processes started at once train every run exactly
once (per-run locks), build the same complete table, and a third call finds nothing to do."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).parents[1]


@pytest.mark.slow
def test_table3_end_to_end_at_tiny_scale_twice_at_once(tmp_path):
    def start(name):
        cmd = [sys.executable, str(REPO / "scripts/make_table.py"), "table=table3", "scale=tiny",
               f"results={tmp_path}/results", f"out={tmp_path}/tables_{name}", f"runs={tmp_path}/runs"]
        return subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    from idlora.experiments import served_runs

    served = served_runs("table3", "tiny")  # rows x seeds + base; some are Table 2's runs, trained here once
    distinct = len({tuple(run.args()) for _, run, _ in served})
    procs = [start("a"), start("b")]
    outs = [p.communicate(timeout=1800)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(o[-3000:] for o in outs)
    trained = [line for o in outs for line in o.splitlines() if line.startswith("=== ")]
    assert len(trained) == distinct and len(set(trained)) == distinct  # every run once, never twice

    a = json.loads((tmp_path / "tables_a" / "table3.json").read_text())
    b = json.loads((tmp_path / "tables_b" / "table3.json").read_text())
    assert a["cells"] == b["cells"] and a["scale"] == "tiny"
    gsm = {c["row"]: c for c in a["cells"] if c["column"] == "gsm8k"}
    assert set(gsm) == {"base", "lora", "idlora_pmrc_rb", "idlora_pmrc_no_rb", "idlora_serial_rb", "idlora_random_rb"}
    assert all(c["ours"] is not None and (c["paper"] is not None) == (row != "base") for row, c in gsm.items())
    assert all(c["seeds"] == 3 for row, c in gsm.items() if row != "base")
    assert not list((tmp_path / "results").glob(".*.tmp"))  # no temporary file left behind

    again = subprocess.run([sys.executable, str(REPO / "scripts/make_table.py"), "table=table3", "scale=tiny",
                            f"results={tmp_path}/results", f"out={tmp_path}/tables_c", f"runs={tmp_path}/runs"],
                           cwd=tmp_path, capture_output=True, text=True)
    assert again.returncode == 0 and f"{len(served)} runs ({distinct} distinct in effect), 0 to do" in again.stdout
