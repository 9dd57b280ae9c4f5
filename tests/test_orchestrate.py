"""Local runs of a table target, several at once (``make tableN JOBS=2``): every missing run is launched exactly
once, at most ``jobs`` at a time, each with its share of the CPU threads and its output in its own log; a failed
run is reported with the end of its log and does not stop the others. ``subprocess.run`` is replaced by a fake
process here; the slow end-to-end table test trains real runs this way (``jobs=auto`` is 2 on a 2-core CPU)."""

import threading
import time

import pytest

from idlora.errors import ConfigError
from idlora.eval.evaluate import SCORING_LOCK
from idlora.experiments import Run
from idlora.runs import orchestrate


def _runs():
    return [Run("gsm8k_llama3", m, [], "tiny") for m in ("lora", "dora", "idlora", "hydralora", "moelora")]


def test_parallel_runs_each_once_at_most_jobs_at_a_time(tmp_path, monkeypatch, capsys):
    lock = threading.Lock()
    active, peak, calls = [0], [0], []

    def fake_run(args, cwd=None, env=None, stdout=None, stderr=None):
        run_id = next(a.split("=", 1)[1] for a in args if a.startswith("method="))
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
            calls.append((run_id, env["OMP_NUM_THREADS"], env["MKL_NUM_THREADS"], env[SCORING_LOCK]))
        stdout.write(f"training {run_id}\nlast line of {run_id}\n")
        deadline = time.time() + 60  # the first run waits for the second to start (a loaded machine is slow)
        while len(calls) < 2 and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        with lock:
            active[0] -= 1
        return type("Done", (), {"returncode": 1 if run_id == "dora" else 0})()

    monkeypatch.setattr(orchestrate.subprocess, "run", fake_run)
    monkeypatch.setattr(orchestrate.os, "cpu_count", lambda: 4)
    failed = orchestrate.run_all_locally(_runs(), tmp_path / "results", str(tmp_path / "runs"), jobs=2)

    assert sorted(c[0] for c in calls) == sorted(["lora", "dora", "idlora", "hydralora", "moelora"])
    assert peak[0] == 2  # two at once, never more
    # 4 cores / 2 jobs; their benchmarks scored one at a time, under one lock beside the logs
    assert {c[1:] for c in calls} == {("2", "2", str(tmp_path / "runs" / "logs" / ".scoring.lock"))}
    assert failed == ["gsm8k_llama3.tiny.dora"]
    logs = sorted(p.name for p in (tmp_path / "runs" / "logs").iterdir())
    assert logs == sorted(f"gsm8k_llama3.tiny.{m}.log" for m in ("lora", "dora", "idlora", "hydralora", "moelora"))
    assert (tmp_path / "runs" / "logs" / "gsm8k_llama3.tiny.idlora.log").read_text() == \
        "training idlora\nlast line of idlora\n"
    out = capsys.readouterr().out
    assert "gsm8k_llama3.tiny.dora failed" in out and "last line of dora" in out  # the failure's log, shown
    assert "[5/5]" in out and out.count("=== ") == 5


def test_one_job_streams_to_the_terminal_without_capping_threads(tmp_path, monkeypatch):
    seen = []

    def fake_run(args, cwd=None, env=None, stdout=None, stderr=None):
        seen.append((stdout, env.get("OMP_NUM_THREADS"), env.get(SCORING_LOCK)))
        return type("Done", (), {"returncode": 0})()

    monkeypatch.setattr(orchestrate.subprocess, "run", fake_run)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv(SCORING_LOCK, raising=False)
    assert orchestrate.run_all_locally(_runs()[:2], tmp_path / "results", None, jobs=1) == []
    assert seen == [(None, None, None), (None, None, None)]


def test_a_benchmark_is_scored_holding_the_launchers_lock_and_the_wait_is_no_benchmarks_time(tmp_path, monkeypatch):
    """With the launcher's lock set, each benchmark is scored while holding it (another process's scoring waits:
    two MMLU scorings at once were killed for memory); without it nothing is locked."""
    from filelock import FileLock, Timeout

    from idlora.eval import evaluate

    lock_path, held = tmp_path / ".scoring.lock", []

    def fake_score(name, cfg, model, tokenizer, scoring, results_path):
        try:
            FileLock(str(lock_path)).acquire(timeout=0)  # a second holder, as another run's process would be
            held.append((name, False))
        except Timeout:
            held.append((name, True))
        return {name: 1.0}

    monkeypatch.setattr(evaluate, "_score_one", fake_score)
    monkeypatch.setattr(evaluate, "check_eval_config", lambda eval_cfg, benchmarks=None: ["gsm8k", "mmlu"])
    monkeypatch.setattr(evaluate, "_scoring_precision", lambda cfg, model: {"used": "fp32"})
    model = type("M", (), {"eval": lambda self: self})()
    monkeypatch.setattr(evaluate, "inference_model", lambda m: m)
    monkeypatch.setenv(SCORING_LOCK, str(lock_path))
    summary = evaluate.evaluate_run(type("C", (), {"eval": None})(), model, None, results_path=tmp_path / "r.json")
    assert summary == {"gsm8k": {"gsm8k": 1.0}, "mmlu": {"mmlu": 1.0}} and held == [("gsm8k", True), ("mmlu", True)]
    FileLock(str(lock_path)).acquire(timeout=0)  # released after scoring
    monkeypatch.delenv(SCORING_LOCK)
    held.clear()
    evaluate.evaluate_run(type("C", (), {"eval": None})(), model, None, results_path=tmp_path / "r2.json")
    assert held == [("gsm8k", False), ("mmlu", False)]


@pytest.mark.parametrize("value,scale,cuda,cpus,expected", [
    ("auto", "mini", False, 2, 2), ("auto", "tiny", False, 8, 2), ("auto", "mini", False, 1, 1),
    ("auto", "paper", False, 64, 1), ("auto", "mini", True, 16, 1), ("3", "paper", False, 2, 3), (None, "mini", False, 2, 2),
])
def test_jobs_auto(value, scale, cuda, cpus, expected, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(orchestrate.os, "cpu_count", lambda: cpus)
    assert orchestrate.parse_jobs(value, scale) == expected


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5"])
def test_bad_jobs(value):
    with pytest.raises(ConfigError, match="JOBS=.*number of runs"):
        orchestrate.parse_jobs(value, "mini")
