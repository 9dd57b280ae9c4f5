"""Results files (atomic, merged per benchmark, schema-checked), the sign test behind the † marks, the ± intervals."""

import json

import numpy as np
import pytest

from idlora.errors import ConfigError
from idlora.results import load_per_example, load_run, new_run_record, update_metrics, write_run_record
from idlora.stats import bootstrap_ci, paired_test, significant


def _record(tmp_path):
    path = tmp_path / "r.json"
    write_run_record(path, new_run_record("r", "gsm8k_llama3", "tiny", "llama3_8b", "idlora", {"a": 1}, 10, 100))
    return path


def test_benchmarks_merge_and_a_failed_one_keeps_the_others(tmp_path):
    path = _record(tmp_path)
    update_metrics(path, "gsm8k", {"gsm8k": 50.0}, [{"id": 0, "score": 1.0}, {"id": 1, "score": 0.0}], 1.5)
    update_metrics(path, "hexphi", {}, [], 0.1, error="RuntimeError: boom")
    update_metrics(path, "mmlu", {"mmlu": 25.0}, [{"id": "a", "score": 0.0}], 2.0)
    rec = load_run(path)
    assert rec["metrics"] == {"gsm8k": 50.0, "mmlu": 25.0}
    assert "error" in rec["benchmarks"]["hexphi"] and "error" not in rec["benchmarks"]["gsm8k"]
    assert [e["score"] for e in load_per_example(rec, "gsm8k", tmp_path)] == [1.0, 0.0]
    assert rec["provenance"]["packages"]["torch"] and rec["provenance"]["seconds"] == pytest.approx(3.6)


def test_a_crash_mid_write_leaves_the_previous_file(tmp_path, monkeypatch):
    path = _record(tmp_path)
    before = path.read_text()
    import idlora.files as io

    def exploding_dump(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(io.json, "dumps", exploding_dump)
    with pytest.raises(OSError):
        update_metrics(path, "gsm8k", {"gsm8k": 1.0}, [], 0.0)
    monkeypatch.undo()
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_old_schema_and_corrupt_files_are_clear_errors(tmp_path):
    path = tmp_path / "old.json"
    path.write_text(json.dumps({"schema_version": 0}))
    with pytest.raises(ConfigError, match="schema 0.*re-run"):
        load_run(path)
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_run(path)


def test_sign_test_p_is_the_exact_binomial_tail():
    # 9 wins, 2 losses, 3 ties: p = 2 * (C(11,0) + C(11,1) + C(11,2)) / 2^11 = 2 * 67 / 2048, by hand
    a = [1] * 9 + [0] * 2 + [1, 0, 1]
    b = [0] * 9 + [1] * 2 + [1, 0, 1]
    got = paired_test(a, b)
    assert got == {"test": "exact sign test", "p": pytest.approx(134 / 2048), "n_pairs": 11, "n_ties": 3,
                   "wins": 9, "losses": 2}
    assert paired_test(b, a)["p"] == got["p"] and paired_test(b, a)["wins"] == 2
    assert paired_test([1, 0, 1], [1, 0, 1])["p"] == 1.0  # all tied: no evidence
    assert paired_test([1] * 5, [0] * 5)["p"] == pytest.approx(2 / 32)
    assert paired_test([1] * 6, [0] * 6)["p"] == pytest.approx(2 / 64)
    better = np.r_[np.ones(30), np.zeros(10)]
    worse = np.r_[np.zeros(25), np.ones(5), np.zeros(10)]
    assert significant(better, worse) and not significant(worse, better)
    assert not significant([1] * 5, [0] * 5)  # p = 0.0625: five wins are not enough
    assert not significant([1, 0, 1, 0], [0, 1, 0, 1])
    with pytest.raises(ValueError, match="same length"):
        paired_test([1, 0], [1])


def test_bootstrap_interval_of_one_run_matches_the_normal_approximation():
    n = 400
    scores = {str(i): float(i % 4 == 0) for i in range(n)}  # 25% correct
    ci = bootstrap_ci([scores])
    half = 1.959964 * np.sqrt(0.25 * 0.75 / n)
    assert ci["mean"] == pytest.approx(0.25) and ci["n"] == n and ci["seeds"] == 1
    assert ci["low"] < 0.25 < ci["high"]
    assert (ci["high"] - ci["low"]) / 2 == pytest.approx(half, rel=0.15)
    assert bootstrap_ci([scores]) == ci  # seeded: the same interval every time


def test_bootstrap_over_seeds_is_wider_and_a_difference_is_paired():
    n = 200
    base = {str(i): float(i % 2) for i in range(n)}
    low = {str(i): float(i % 4 == 0) for i in range(n)}
    one = bootstrap_ci([base])
    two = bootstrap_ci([base, low])
    assert two["mean"] == pytest.approx((0.5 + 0.25) / 2) and two["seeds"] == 2
    assert two["high"] - two["low"] > one["high"] - one["low"]  # the seeds disagree: wider than examples alone
    same = bootstrap_ci([base], [base])
    assert same["mean"] == 0 and same["low"] == 0 and same["high"] == 0  # paired by example: no spread
    shifted = {k: 1.0 for k in base}
    diff = bootstrap_ci([shifted], [base])
    assert diff["mean"] == pytest.approx(0.5) and diff["low"] > 0
    with pytest.raises(ValueError, match="share no example ids"):
        bootstrap_ci([{"a": 1.0}], [{"b": 1.0}])


def test_atomic_writes_get_ordinary_permissions(tmp_path):
    import os

    from idlora.files import atomic_write_json

    old = os.umask(0o022)
    try:
        path = atomic_write_json(tmp_path / "r.json", {"a": 1})
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644  # not mkstemp's 0600: results are shared and committed
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no temporary file left behind


def test_run_identity_ignores_how_a_run_was_executed_but_not_what_it_is():
    from idlora.results import run_identity

    a = {"run_id": "x", "output_root": "runs", "train": {"lr": 1e-4, "resume": False, "wandb": True, "save_steps": 5}}
    b = {"run_id": "x", "output_root": "/elsewhere", "train": {"lr": 1e-4, "resume": True, "wandb": False,
                                                               "save_steps": 20}}
    assert run_identity(a) == run_identity(b)  # make tableN trains with train.resume=true
    assert run_identity(a) != run_identity({**a, "train": {**a["train"], "lr": 2e-4}})


def test_committed_mini_runs_are_complete_under_the_current_configs():
    """Every committed results file of a table run at mini was written by the current config of its run (with its
    every benchmark): a table target does not retrain it, and a table never reads a file of another config. A
    config change that alters the mini runs must come with the runs redone (or the old ones archived)."""
    from pathlib import Path

    from idlora.experiments import RUN_TABLES, table_runs
    from idlora.runs.launch import is_complete

    results = Path(__file__).parents[1] / "results" / "runs"
    committed = {p.name.removesuffix(".json") for p in results.glob("*.json") if not p.name.endswith(".examples.json")}
    runs = {}
    for table in RUN_TABLES:
        for run in table_runs(table, "mini"):
            runs.setdefault(run.config().run_id, run)
    assert committed and not committed - set(runs), sorted(committed - set(runs))
    assert [i for i in sorted(committed) if not is_complete(runs[i], results)] == []


def test_a_recorded_run_of_another_config_is_not_usable(tmp_path):
    import json

    from idlora.results import SCHEMA_VERSION, usable_record

    config = {"seed": 1, "train": {"lr": 1e-4, "resume": False}, "scale": {"name": "mini"}, "output_root": "a"}
    path = tmp_path / "r.json"
    rec = {"schema_version": SCHEMA_VERSION, "config": config, "train": {}, "benchmarks": {"gsm8k": {}}}
    path.write_text(json.dumps(rec))
    moved = {**config, "output_root": "b", "train": {"lr": 1e-4, "resume": True},
             "scale": {"name": "mini", "gradient_checkpointing": {"default": False}}}
    assert usable_record(path, moved, ["gsm8k"]) is not None  # location, execution and added-default keys
    assert usable_record(path, {**config, "seed": 2}) is None
    assert usable_record(path, config, ["gsm8k", "mmlu"]) is None
    path.write_text(json.dumps({**rec, "benchmarks": {"gsm8k": {"error": "boom"}}}))
    assert usable_record(path, config, ["gsm8k"]) is None
