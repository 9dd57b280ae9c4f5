"""The results page (``make results_page``, ``results/README.md``): built from results files only. Against small
hand-made files whose expected numbers are computed here by hand; and the committed page is what the generator
makes of the committed files (so no number on it was typed)."""

from __future__ import annotations

import json
from pathlib import Path

from idlora.reports.results_page import build

REPO = Path(__file__).resolve().parents[1]
D1, D2 = "2027-01-01T00:00:00+0000", "2027-01-02T00:00:00+0000"  # both after every part's CODE_SINCE


def _write(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def _efficiency() -> dict:
    shapes = "paper_shapes_infer_time_ratio_"
    pair = "decode_time_ratio_idlora_vs_lora_unmerged"
    return {
        "model": "tiny", "trials": 3, "settings": {"prompt_batch": 2, "prompt_tokens": 8, "decode_tokens": 4},
        "metrics": {shapes + "idlora": 1.02, shapes + "hydralora_official": 1.10, pair: 0.99,
                    "paper_shapes_extra_memory_idlora": 3 * 2 ** 20,
                    "paper_shapes_adapter_bytes_idlora": 2 * 2 ** 20,
                    "paper_shapes_activation_bytes_idlora": 2 ** 20, "train_step_ratio_idlora_vs_lora": 0.75},
        "intervals": {shapes + "idlora": [1.01, 1.03], pair: [0.97, 1.0]},
        "samples": {shapes + "idlora": [1.01, 1.02, 1.03], pair: [0.98, 0.97, 0.99, 0.96, 0.995, 1.02]},
        "provenance": {"torch": "2.13.0+cpu", "threads": 2, "cuda": None, "date": D2},
        "parts": {"shapes": {"date": D2}, "decode": {"date": D2}, "train": {"date": D1}},
        "history": [{"part": "shapes", "date": D1,
                     "metrics": {shapes + "idlora": {"median": 1.10, "interval": [1.05, 1.15], "n": 40},
                                 shapes + "hydralora_official": {"median": 1.20, "interval": None, "n": 40}}},
                    {"part": "decode", "date": D1, "metrics": {pair: {"median": 1.01, "interval": None, "n": 0}}}],
    }


def _run(name: str, train_s, bench_s: float, run_s: float, end: str) -> dict:
    return {"run_id": name, "experiment": "gsm8k_llama3", "scale": "mini", "train": {"seconds": train_s} if train_s
            else {}, "benchmarks": {"gsm8k": {"seconds": bench_s, "n": 150}},
            "provenance": {"seconds": run_s, "end": end}}


def _results(root: Path) -> Path:
    results = root / "results"
    _write(results / "bench/efficiency.json", _efficiency())
    _write(results / "claims.json", {"scale": "mini", "claims": [{"verdict": "supported"}, {"verdict": "not resolved"},
                                                                 {"verdict": "not resolved"}]})
    _write(results / "runs/a.json", _run("a", 100, 50, 160, "2027-01-01T10:00:00+00:00"))
    _write(results / "runs/b.json", _run("b", 300, 70, 380, "2027-01-03T10:00:00+00:00"))
    _write(results / "runs/c.json", _run("c", None, 90, 95, "2027-01-02T10:00:00+00:00"))  # a base run
    _write(results / "runs/a.examples.json", {"gsm8k": []})  # per-example files are not runs
    _write(results / "tables/t.json", {"cells": [{"runs": ["a", "zzz"]}, {"runs": ["b", "a"]}]})  # zzz: no record
    _write(results / "bench/gpu_check.json", {"dry_run": False, "provenance": {"device": "H100", "date": D1,
                                                                              "commit": "abc", "cuda": "12.4"},
                                               "parts": {"train": {"status": "ok", "seconds": 61.4, "budget_s": 120,
                                                                   "skipped": [{"item": "dora"}], "steps": 3,
                                                                   "loss_ratio": 0.123456, "nested": {"x": 1}}}})
    return results


def test_page_from_hand_made_files(tmp_path):
    page = build(_results(tmp_path))
    # ID-LoRA, paper shapes: this run 1.02 [1.01, 1.03] over 3 trials; over the two runs, medians 1.10 and 1.02:
    # mean 1.06, sd 0.0566, se 0.04, t(0.975, 1 df) = 12.706, half-width 0.508 -> [0.552, 1.568]
    assert ("| ID-LoRA | 1.020 [1.010, 1.030], n=3 | 1.060 [0.552, 1.568], 2 runs | — | — | 3.0 (2.0 + 1.0) |"
            in page)
    # per-run medians, in date order
    assert f"| method | {D1} | {D2} |" in page and "| ID-LoRA | 1.100 | 1.020 |" in page
    # official HydraLoRA minus ID-LoRA, run by run: 1.20 - 1.10 = +10.0 and 1.10 - 1.02 = +8.0 points;
    # mean +9.0, se 1.0, half-width 12.7 -> [-3.7, +21.7]
    assert "| prompt forward | HydraLoRA, official code | +10.0, +8.0 | +9.0 [-3.7, +21.7] |" in page
    # decoding pair: the history run, then this run with 5 of its 6 trials below 1: p = 2 (1 + 6) / 2^6 = 0.22
    assert f"| eager | {D1} | 1.010 | — |" in page
    assert f"| eager | {D2} | 0.990 [0.970, 1.000], n=6 | 5 / 1, p=0.22 |" in page
    assert f"| `train_step_ratio_idlora_vs_lora` | 0.75 | train | {D1} |" in page
    assert "3 claims, 1 supported, 0 contradicted, 2 not resolved" in page
    # runs: training 100, 300 (the base run trains nothing) -> 200; scoring 50, 70, 90 -> 70; runs 160, 380, 95
    assert "| `gsm8k_llama3.mini` | 3 | 200 | gsm8k 70 | 160 | 635 | 2027-01-01 – 2027-01-03 |" in page
    # table t reads runs a and b (zzz has no record): training 100, 300 -> 200; runs 160, 380 -> 270, sum 540
    assert "| `t` | 2 | 200 | 270 | 540 |" in page
    assert "| train | ok | 61 / 120 | 1 | `steps` 3; `loss_ratio` 0.1235 |" in page
    # an absent file is said to be absent, with no number
    assert "## CPU throughput (`results/bench/cpu.json`, `make bench PARTS=cpu`)\n\nNot measured: the file is absent." \
        in page
    assert "## What the router does (`results/router/`, `make fig_router`)\n\nNo run analysed." in page


def test_page_of_an_empty_results_folder(tmp_path):
    page = build(tmp_path / "results")
    assert page.count("the file is absent") == 5 and "No run recorded." in page and "No run analysed." in page


def test_committed_page_is_the_generators_output():
    committed = (REPO / "results/README.md").read_text(encoding="utf-8")
    assert committed == build(REPO / "results"), "results/README.md is stale or edited by hand: make results_page"
