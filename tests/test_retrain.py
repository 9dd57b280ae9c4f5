"""A rerun never destroys a complete result: refused without train.retrain=true, and a retrain killed during scoring
leaves the complete results file byte for byte; the retrained run replaces it only once complete."""

import json

import pytest

from idlora.config import compose
from idlora.errors import ConfigError
from idlora.results import STAGING
from idlora.training.pipeline import train_and_evaluate

RUN = "gsm8k_llama3.tiny.lora"


def _cfg(tmp_path, *overrides):
    return compose(["experiment=gsm8k_llama3", "method=lora", "scale=tiny", "train.wandb=false",
                    f"output_root={tmp_path}/runs", f"results_dir={tmp_path}/results", "train.max_steps=2",
                    "eval.limit=2", *overrides])


def _files(tmp_path):
    return {p.name: p.read_bytes() for p in (tmp_path / "results").glob("*.json")}


def test_a_complete_result_survives_a_rerun_killed_during_scoring(tmp_path, monkeypatch):
    train_and_evaluate(_cfg(tmp_path))
    complete = _files(tmp_path)
    assert set(complete) == {f"{RUN}.json", f"{RUN}.examples.json"}
    assert json.loads(complete[f"{RUN}.json"])["metrics"]  # trained and scored

    with pytest.raises(ConfigError, match=r"already holds run .*complete.*train\.retrain=true"):
        train_and_evaluate(_cfg(tmp_path))
    assert _files(tmp_path) == complete

    from idlora.eval import evaluate

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed during scoring")

    monkeypatch.setattr(evaluate, "run_benchmark", killed)
    with pytest.raises(KeyboardInterrupt):
        train_and_evaluate(_cfg(tmp_path, "train.retrain=true"))
    assert _files(tmp_path) == complete  # the old file, byte for byte
    staged = json.loads((tmp_path / "results" / STAGING / f"{RUN}.json").read_text())
    assert staged["train"]["steps"] == 2 and not staged["metrics"]  # the retrain got as far as scoring

    monkeypatch.undo()
    train_and_evaluate(_cfg(tmp_path, "train.retrain=true", "train.resume=true"))  # finishes the staged run
    record = json.loads((tmp_path / "results" / f"{RUN}.json").read_text())
    assert record["metrics"] and record["provenance"]["start"] != json.loads(complete[f"{RUN}.json"])["provenance"][
        "start"]
    assert record["config"]["results_dir"] == f"{tmp_path}/results"
    assert record["train"]["adapter_dir"] == f"{tmp_path}/runs/{RUN}/adapter"
    assert (tmp_path / "runs" / RUN / "adapter" / "adapter_config.json").exists()
    assert not (tmp_path / "results" / STAGING / f"{RUN}.json").exists()
    assert set(_files(tmp_path)) == set(complete)


def test_a_run_from_a_dirty_tree_keeps_its_diff_beside_its_record(tmp_path, monkeypatch):
    import hashlib

    from idlora import results

    monkeypatch.setattr(results, "git_commit", lambda: "abc123-dirty")
    monkeypatch.setattr(results, "git_diff", lambda: "diff --git a/x.py b/x.py\n+changed\n")
    record = results.new_run_record("r", "e", "tiny", "m", "lora", {}, 1, 2)
    path = results.write_run_record(tmp_path / "r.json", record)
    saved = json.loads(path.read_text())["provenance"]
    assert "git_diff" not in saved and saved["git_diff_file"] == "r.diff"
    text = (tmp_path / "r.diff").read_text()
    assert text == "diff --git a/x.py b/x.py\n+changed\n"
    assert saved["git_diff_sha256"] == hashlib.sha256(text.encode()).hexdigest()
    monkeypatch.setattr(results, "git_commit", lambda: "abc123")  # a clean tree: no diff, no file
    clean = results.write_run_record(tmp_path / "c.json", results.new_run_record("c", "e", "tiny", "m", "lora", {}, 1, 2))
    assert "git_diff_file" not in json.loads(clean.read_text())["provenance"] and not (tmp_path / "c.diff").exists()
