"""make bench part cpu (idlora.bench.cpu): the pipeline on the tiny model through the script, and the GEMM replay's
FLOP count against shapes counted by hand. No timing is asserted: the numbers are the bench's, not the tests'."""

import json
import subprocess
import sys
from pathlib import Path

import torch

from idlora.bench.cpu import RATIOS, WAYS, _GemmRecorder, gemm_peak

REPO = Path(__file__).resolve().parents[1]


def test_the_recorder_sees_every_gemm_of_a_training_step_and_the_replay_counts_their_flops():
    layer = torch.nn.Linear(8, 4)
    x = torch.randn(3, 8, requires_grad=True)
    recorder = _GemmRecorder()
    with recorder:
        layer(x).sum().backward()
    # forward x W^T (3x8 @ 8x4), backward dx = g W (3x4 @ 4x8), dW = g^T x (4x3 @ 3x8)
    assert sorted(recorder.shapes) == sorted([(3, 8, 4, 1), (3, 4, 8, 1), (4, 3, 8, 1)])
    peak = gemm_peak(recorder.shapes + [(3, 8, 4, 1)], torch.float32, repeats=1)
    assert peak["gflop"] == 2 * (3 * 8 * 4 * 2 + 3 * 4 * 8 + 4 * 3 * 8) / 1e9
    assert peak["seconds"] > 0


def test_part_cpu_writes_its_file_through_make_bench_script(tmp_path):
    out = tmp_path / "cpu.json"
    res = subprocess.run([sys.executable, str(REPO / "scripts/bench_efficiency.py"), "quick=true", "parts=cpu",
                          f"cpu_out={out}", f"out={tmp_path / 'efficiency.json'}"], capture_output=True, text=True,
                         cwd=REPO, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    report = json.loads(out.read_text())
    assert not (tmp_path / "efficiency.json").exists()  # only the part named ran
    train = report["train"]
    assert 0 <= train["padding_fraction"] < 1 and set(train["tokens_per_s"]) == set(WAYS)
    assert set(train["ratios"]) == set(RATIOS)
    for ci in train["ratios"].values():
        assert ci["ci95"][0] <= ci["median"] <= ci["ci95"][1]
    for dtype in ("fp32", "bf16"):
        roof = report["roofline"][dtype]
        assert 0 < roof["gemm_gflop"] <= roof["step_gflop"] * 1.01  # the GEMMs are (nearly) all a step's FLOPs
        assert roof["share_of_peak"] == roof["achieved_gflops_per_s"] / roof["gemm_peak_gflops_per_s"]
    assert {"generation", "scoring"} <= set(report) and report["provenance"]["threads"] == 1
    assert "bf16_features" in report["provenance"] and report["provenance"]["date"]
