"""The GPU check (idlora/bench/gpu_check.py): without CUDA it writes nothing; its dry run takes every part's code path on
the CPU at tiny sizes; budgets skip with a reason; the bootstrap interval brackets the median."""

import json
import time

import pytest
import torch

from idlora.bench import gpu_check
from idlora.errors import ConfigError
from idlora.stats import median_ci


def test_without_cuda_it_says_so_and_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_check.run(out=str(tmp_path / "gpu_check.json")) is None
    assert "no CUDA device is present" in capsys.readouterr().out
    assert not (tmp_path / "gpu_check.json").exists()
    with pytest.raises(ConfigError, match="unknown part"):
        gpu_check.run(dry_run=True, parts=("train", "nope"))


def test_dry_run_covers_every_part(tmp_path):
    out = tmp_path / "gpu_check.json"
    report = gpu_check.run(dry_run=True, out=str(out))
    assert json.loads(out.read_text()) == json.loads(json.dumps(report))
    parts = report["parts"]
    assert list(parts) == list(gpu_check.PARTS)
    assert {k: p["status"] for k, p in parts.items()} == {k: "ok" for k in gpu_check.PARTS}, parts
    assert all(p["skipped"] == [] for p in parts.values())
    losses = parts["train"]["methods"]["idlora"]["losses"]
    assert len(losses) == 2 and parts["train"]["methods"]["idlora"]["finite"]
    assert 0.9 < parts["pmrc"]["vs_reference"]["objective_ratio"] < 1.1
    for part in ("fig3", "compile"):
        for ratios in parts[part]["ratios"].values():
            for r in ratios.values():
                lo, hi = r["ci95"]
                assert 0 < lo <= r["median"] <= hi
    assert set(parts["fig3"]["ratios"]["idlora"]) == {"prompt_forward", "decode"}
    assert all(g["tokens_per_s"] > 0 for g in parts["generate"]["generate"].values())
    assert report["dry_run"] and report["provenance"]["torch"] == torch.__version__


def test_budget_skips_with_a_reason():
    b = gpu_check.Budget("fig3", 0.0)
    time.sleep(0.01)
    assert not b.ok("idlora")
    assert b.skipped == [{"item": "idlora", "reason": "over the fig3 part's budget of 0 s"}]
    assert gpu_check.Budget("fig3", 60).ok("lora")


def test_median_and_bootstrap_interval():
    r = median_ci([1.0, 2.0, 3.0, 4.0, 100.0])
    assert r["median"] == 3.0 and r["trials"] == 5
    assert 1.0 <= r["ci95"][0] <= 3.0 <= r["ci95"][1] <= 100.0
    assert median_ci([2.0] * 4)["ci95"] == [2.0, 2.0]
