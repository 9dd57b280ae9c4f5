"""Bad input, as a table: each wrong input gives one ConfigError whose message names the fix, raised before any
expensive work, and nothing on disk changes (a results file and data already there stay byte-identical).

The entry points in ``scripts/`` turn a ConfigError into one ``error: ...`` line and exit status 2 with no
traceback (``idlora.cli.main_guard``); the slow test at the end checks that through real subprocesses.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from idlora.errors import ConfigError

REPO = Path(__file__).parents[1]
TINY = ["experiment=gsm8k_llama3", "scale=tiny", "train.wandb=false", "train.max_steps=1"]


def _train(root: Path, *overrides: str):
    from idlora.config import compose
    from idlora.training.loop import run

    return run(compose([*TINY, f"output_root={root}/runs", f"results_dir={root}/results", *overrides]))


def _evaluate(root: Path, run: str, benchmarks=None):
    from idlora.eval.evaluate import evaluate_run, find_run

    path, record = find_run(run, f"{root}/results")
    from omegaconf import OmegaConf

    return evaluate_run(OmegaConf.create(record["config"]), benchmarks=benchmarks)


def _table(root: Path, **kw):
    from idlora.runs.orchestrate import make_table

    args = {"table": "table1", "scale": "tiny", "cluster": "local", "jobs": 1, **kw}
    return make_table(args["table"], args["scale"], args["cluster"], f"{root}/results", f"{root}/tables",
                      jobs=args["jobs"])


def _samples(root: Path, name: str):
    from idlora.eval.humaneval import score_samples_file

    return score_samples_file(root / "in" / name)


# input files, written before the snapshot of each test's directory
INPUTS = {"bad.jsonl": '{"question": "1"}\n{oops\n', "bad.json": '[{"question": ', "empty.jsonl": "",
          "x.jsonl": '{"prompt": "hi"}\n', "a.json": '[{"instruction": "i", "output": "o"}]',
          "unknown_task.jsonl": '{"task_id": "HumanEval/999", "completion": "x"}\n',
          "malformed.jsonl": '{"task_id": "HumanEval/0", "completion": "x"}\n{no\n'}


def _data_file(root: Path, name: str, text: str) -> str:
    assert INPUTS[name] == text
    return str(root / "in" / name)


CASES = [
    # unknown names
    ("unknown experiment", lambda t: _train(t, "experiment=gsm8k_llama4"), "unknown experiment 'gsm8k_llama4'; valid:"),
    ("unknown method", lambda t: _train(t, "method=lorax"), "unknown method 'lorax'; valid:"),
    ("unknown scale", lambda t: _train(t, "scale=huge"), "unknown scale 'huge'; valid: mini, paper, tiny"),
    ("unknown model", lambda t: _train(t, "model=gpt5"), "unknown model 'gpt5'; valid:"),
    ("unknown selection", lambda t: _train(t, "method.selection=best"), "selection"),
    ("unknown router", lambda t: _train(t, "method.router=mlp"), "unknown router"),
    ("unknown benchmark", lambda t: _train(t, "eval.benchmarks=[gsm9k]"), "unknown benchmark"),
    ("unknown table", lambda t: _table(t, table="table9"), "unknown table 'table9'"),
    ("unknown SCALE", lambda t: _table(t, scale="huge"), "unknown SCALE='huge'"),
    ("unknown cluster", lambda t: _table(t, cluster="aws"), "unknown CLUSTER='aws'"),
    ("JOBS zero", lambda t: _table(t, jobs="0"), "JOBS='0' is not valid.*or auto"),
    ("JOBS not a number", lambda t: _table(t, jobs="many"), "JOBS='many' is not valid"),
    # method values
    ("r zero", lambda t: _train(t, "method.r=0"), "positive integer"),
    ("r negative", lambda t: _train(t, "method.r=-8"), "positive integer"),
    ("r not a number", lambda t: _train(t, "method.r=abc"), "positive integer"),
    ("odd r with rank boosting", lambda t: _train(t, "method.r=7"), "r must be even"),
    ("k zero", lambda t: _train(t, "method.k=0"), "k .*>= 1"),
    ("k*r above d_out", lambda t: _train(t, "method.r=64", "method.k=8"), r"k·r|k\*r"),
    ("targets not in the model", lambda t: _train(t, "method.target_modules=[query_key_value]"), "query_key_value"),
    # wrong types and ranges from the command line
    ("lr not a number", lambda t: _train(t, "train.lr=abc"), r"train.lr='abc' is not valid"),
    ("lr negative", lambda t: _train(t, "train.lr=-1e-4"), "train.lr=-0.0001 is not valid"),
    ("lr the scale replaces", lambda t: _train(t, "scale=mini", "method=idlora", "train.lr=1e-4"),
     r"train.lr=1e-4 has no effect at scale=mini.*Set \+scale.lr.idlora=1e-4 instead"),
    ("max_steps negative", lambda t: _train(t, "train.max_steps=-3"), "train.max_steps=-3 is not valid"),
    ("batch not an integer", lambda t: _train(t, "train.batch_size=2.5"), "train.batch_size=2.5 is not valid"),
    ("resume not a bool", lambda t: _train(t, "train.resume=maybe"), "train.resume='maybe' is not valid"),
    ("batch not a multiple of micro batch", lambda t: _train(t, "train.batch_size=3", "train.micro_batch_size=2"),
     "multiple of micro_batch_size"),
    ("eval limit zero", lambda t: _train(t, "eval.limit=0"), "eval.limit=0 is not valid"),
    # files
    ("missing data file", lambda t: _train(t, f"data.path={t}/in/nope.jsonl"), "does not exist"),
    ("corrupt JSONL data", lambda t: _train(t, "data.path=" + _data_file(t, "bad.jsonl", '{"question": "1"}\n{oops\n')),
     "line 2: not valid JSON"),
    ("corrupt JSON data", lambda t: _train(t, "data.path=" + _data_file(t, "bad.json", '[{"question": ')),
     "not valid JSON"),
    ("empty data file", lambda t: _train(t, "data.path=" + _data_file(t, "empty.jsonl", "")), "is empty"),
    ("data in another schema", lambda t: _train(t, "data.path=" + _data_file(t, "x.jsonl", '{"prompt": "hi"}\n')),
     r"lacks field\(s\) \['question', 'answer'\]"),
    ("saferpaca without its safety file", lambda t: _train(t, "experiment=safety_llama3", "data.path=" +
                                                           _data_file(t, "a.json", '[{"instruction": "i", "output": "o"}]')),
     "safety_path"),
    ("evaluate a run that does not exist", lambda t: _evaluate(t, "nope.tiny.lora"), "no results file for run"),
    ("samples with an unknown task_id", lambda t: _samples(t, "unknown_task.jsonl"),
     "HumanEval/999"),
    ("samples with a malformed line", lambda t: _samples(t, "malformed.jsonl"),
     "line 2"),
    ("unknown judge", lambda t: _train(t, "experiment=safety_llama3", "eval.judge=gpt9"), "unknown HEx-PHI judge"),
]


def _snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("name,action,match", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_clear_error_and_changes_nothing(name, action, match, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in").mkdir()
    for name, text in INPUTS.items():
        (tmp_path / "in" / name).write_text(text)
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "earlier.tiny.lora.json").write_text(json.dumps({"run_id": "earlier", "metrics": {}}))
    before = _snapshot(tmp_path)
    with pytest.raises(ConfigError, match=match):
        action(tmp_path)
    after = _snapshot(tmp_path)
    assert after == before, f"{name}: files changed: {sorted(set(after) ^ set(before)) or 'contents'}"


def test_at_least_25_cases():
    assert len(CASES) >= 25 and len({c[0] for c in CASES}) == len(CASES)


def test_paper_scale_offline_names_what_it_could_not_reach(tmp_path, monkeypatch):
    """No network at paper scale: fail fast naming the dataset (loaded first, before the model); never mini data."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(ConfigError, match="openai/gsm8k.*data.path=FILE"):
        _train(tmp_path, "scale=paper")
    # with the data supplied locally the model is next: named with the way to get it
    from idlora.config import compose
    from idlora.models import load_model_and_tokenizer

    with pytest.raises(ConfigError, match="meta-llama/Meta-Llama-3-8B"):
        load_model_and_tokenizer(compose(["experiment=gsm8k_llama3", "scale=paper"]).model)


@pytest.mark.slow
@pytest.mark.parametrize("argv,match", [
    (["scripts/train.py", "experiment=gsm8k_llama3", "scale=tiny", "train.lr=abc"], "train.lr='abc' is not valid"),
    (["scripts/train.py", "experiment=gsm8k_llama3", "scale=tiny", "method.r=7"], "r must be even"),
    (["scripts/make_table.py", "table=table9"], "unknown table 'table9'"),
    (["scripts/evaluate.py", "run=nope"], "no results file for run"),
    (["-m", "idlora.eval.humaneval", "--samples", "/nonexistent.jsonl"], "nonexistent"),
])
def test_scripts_exit_2_with_one_line_and_no_traceback(argv, match, tmp_path):
    p = subprocess.run([sys.executable, *[str(REPO / a) if a.startswith("scripts/") else a for a in argv]],
                       cwd=tmp_path, capture_output=True, text=True)
    assert p.returncode == 2, p.stderr[-1500:]
    assert "Traceback" not in p.stderr and match in p.stderr
    assert not list(tmp_path.iterdir())  # nothing written
