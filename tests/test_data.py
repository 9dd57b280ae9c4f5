"""Data loaders on small files in the hub schemas, the mixture, the response-only loss mask, the mini sets."""

import json
import re
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from idlora.data import SFTCollator, load_dataset_for, multitask_mixture, read_records, tokenize_example
from idlora.data import synthetic
from idlora.errors import ConfigError
from idlora.models.tiny import tiny_tokenizer

DATA = Path(__file__).parent / "data"


def cfg(**kw):
    return OmegaConf.create({"source": "hub", "path": None, "limit": None, **kw})


def test_local_files_in_hub_schema():
    gsm = load_dataset_for(cfg(name="gsm8k", path=str(DATA / "gsm8k_hub.jsonl")), "paper", 0)
    assert gsm[0]["instruction"].startswith("Natalia") and gsm[0]["output"].endswith("#### 72")
    assert {r["task"] for r in gsm} == {"gsm8k"}
    code = load_dataset_for(cfg(name="code_alpaca", path=str(DATA / "code_alpaca_hub.json")), "paper", 0)
    assert len(code) == 4 and code[2]["input"].startswith("string =") and code[0]["task"] == "code"
    # Saferpaca is the Safety-Tuned LLaMAs file as it is: nothing from Alpaca-Cleaned is added on top
    sample = read_records(DATA / "saferpaca_2000_sample.json")
    safer = load_dataset_for(cfg(name="saferpaca", safety_path=str(DATA / "saferpaca_2000_sample.json")), "paper", 0)
    assert len(safer) == len(sample) and {r["task"] for r in safer} == {"saferpaca"}
    assert sorted(r["instruction"] for r in safer) == sorted(r["instruction"] for r in sample)


def test_a_local_file_is_used_at_mini_scale_too():
    """data.path given at mini scale replaces the synthetic set (it is never silently ignored)."""
    rows = load_dataset_for(cfg(name="gsm8k", source="synthetic", path=str(DATA / "gsm8k_hub.jsonl")), "mini", 0)
    assert rows[0]["instruction"].startswith("Natalia")
    synth = load_dataset_for(cfg(name="gsm8k", source="synthetic"), "mini", 0)
    assert not synth[0]["instruction"].startswith("Natalia")


def test_multitask_mixture_is_seeded_and_takes_half_of_code():
    a = [{"task": "alpaca", "i": i} for i in range(10)]
    g = [{"task": "gsm8k", "i": i} for i in range(6)]
    c = [{"task": "code", "i": i} for i in range(8)]
    m1, m2 = multitask_mixture(a, g, c, seed=3), multitask_mixture(a, g, c, seed=3)
    assert m1 == m2 and len(m1) == 10 + 6 + 4
    assert sum(r["task"] == "code" for r in m1) == 4
    assert multitask_mixture(a, g, c, seed=4) != m1
    mixed = load_dataset_for(cfg(name="multitask", alpaca_path=str(DATA / "alpaca_hub.json"),
                                 gsm8k_path=str(DATA / "gsm8k_hub.jsonl"),
                                 code_alpaca_path=str(DATA / "code_alpaca_hub.json"), code_fraction=0.5), "paper", 0)
    assert sorted(r["task"] for r in mixed) == ["alpaca"] * 3 + ["code"] * 2 + ["gsm8k"] * 2


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        read_records(tmp_path / "nope.jsonl")
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(ConfigError, match="is empty"):
        read_records(tmp_path / "empty.jsonl")
    (tmp_path / "bad.jsonl").write_text('{"question": "a", "answer": "#### 1"}\n{oops\n')
    with pytest.raises(ConfigError, match="line 2: not valid JSON"):
        read_records(tmp_path / "bad.jsonl")
    (tmp_path / "fields.jsonl").write_text('{"question": "a"}\n')
    with pytest.raises(ConfigError, match=r"lacks field\(s\) \['answer'\]"):
        load_dataset_for(cfg(name="gsm8k", path=str(tmp_path / "fields.jsonl")), "paper", 0)
    with pytest.raises(ConfigError, match="unknown dataset 'mmlu_train'; valid: gsm8k"):
        load_dataset_for(cfg(name="mmlu_train"), "paper", 0)
    with pytest.raises(ConfigError, match="Saferpaca needs .*safety-tuned-llamas"):
        load_dataset_for(cfg(name="saferpaca", safety_path=None), "paper", 0)
    with pytest.raises(ConfigError, match="data.path is not used by Saferpaca.*data.safety_path=FILE"):
        load_dataset_for(cfg(name="saferpaca", path=str(DATA / "alpaca_hub.json"),
                             safety_path=str(DATA / "saferpaca_2000_sample.json")), "paper", 0)


def test_no_network_names_the_dataset_and_the_offline_option(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(ConfigError, match=r"openai/gsm8k.*data.path=FILE.*scale=mini"):
        load_dataset_for(cfg(name="gsm8k"), "paper", 0)


@pytest.mark.parametrize("family", ["chatml", "llama3"])
def test_loss_only_on_response_tokens(family):
    tok = tiny_tokenizer()
    rec = {"instruction": "Add 2 and 3.", "input": "", "output": "2 + 3 = 5\n#### 5"}
    ex = tokenize_example(rec, tok, family, max_length=512)
    kept = [t for t, l in zip(ex["input_ids"], ex["labels"]) if l != -100]
    assert tok.decode(kept) == rec["output"] + tok.eos_token  # the response and eos, nothing else
    n_prompt = sum(l == -100 for l in ex["labels"])
    assert ex["labels"][:n_prompt] == [-100] * n_prompt and ex["input_ids"][n_prompt:] == kept
    short = tokenize_example(rec, tok, family, max_length=n_prompt + 3)
    assert len(short["input_ids"]) == n_prompt + 3 and sum(l != -100 for l in short["labels"]) == 3
    assert tokenize_example(rec, tok, family, max_length=n_prompt) is None  # no room for a response


def test_collator_pads_right():
    tok = tiny_tokenizer()
    a = tokenize_example({"instruction": "x", "input": "", "output": "yy"}, tok, "chatml", 512)
    b = tokenize_example({"instruction": "longer prompt", "input": "", "output": "z"}, tok, "chatml", 512)
    batch = SFTCollator(tok)([a, b])
    assert batch["input_ids"].shape == batch["labels"].shape == batch["attention_mask"].shape
    n = len(a["input_ids"])
    assert batch["attention_mask"][0, n:].sum() == 0 and (batch["labels"][0, n:] == -100).all()
    assert (batch["input_ids"][0, n:] == tok.pad_token_id).all()


def test_mini_data_is_deterministic_disjoint_and_correct(tmp_path):
    p1 = synthetic.generate_mini_data(tmp_path / "a", seed=0, sizes={"gsm8k_train": 300, "gsm8k_test": 100})
    p2 = synthetic.generate_mini_data(tmp_path / "b", seed=0, sizes={"gsm8k_train": 300, "gsm8k_test": 100})
    for name in p1:
        assert p1[name].read_text() == p2[name].read_text()
    train = [json.loads(l) for l in p1["gsm8k_train"].read_text().splitlines()]
    test = [json.loads(l) for l in p1["gsm8k_test"].read_text().splitlines()]
    assert not {r["question"] for r in train} & {r["question"] for r in test}
    for r in train + test:
        assert r["source"] == "synthetic-mini"
        # recompute the final answer independently from the equations in the solution
        *_, last = re.findall(r"(\d+) ([-+*/]) (\d+) = (\d+)", r["answer"])
        a, op, b, c = last
        assert eval(f"{a} {op} {b}") == int(c)
        assert r["answer"].split("####")[1].strip() == c
    _check_mmlu([json.loads(l) for l in p1["mmlu"].read_text().splitlines()])
    cqa = [json.loads(l) for l in p1["cqa"].read_text().splitlines()]
    assert len({r["question"] for r in cqa}) == len(cqa) >= 150
    for r in cqa:
        assert r["answerKey"] in r["choices"]["label"] and len(set(r["choices"]["text"])) == 5
        assert set(r) >= {"question", "question_concept", "choices", "answerKey"}


_UNITS = {("minutes", "hours"): 60, ("seconds", "minutes"): 60, ("hours", "days"): 24, ("days", "weeks"): 7,
          ("centimeters", "meters"): 100, ("grams", "kilograms"): 1000, ("months", "years"): 12,
          ("millimeters", "centimeters"): 10}
_SOME_CAPITALS = {"France": "Paris", "Japan": "Tokyo", "Egypt": "Cairo", "Canada": "Ottawa", "Peru": "Lima"}


def _check_mmlu(rows):
    """Each subject's answers recomputed independently of the generator (hub schema, 4 distinct options)."""
    assert len({r["question"] for r in rows}) == len(rows) >= 150
    assert len({r["subject"] for r in rows[:150]}) >= 4
    for r in rows:
        assert set(r) >= {"question", "subject", "choices", "answer"} and len(set(r["choices"])) == 4
        right, q = r["choices"][r["answer"]], r["question"]
        if m := re.fullmatch(r"What is (\d+) ([-+*]) (\d+)\?", q):
            assert right == str(eval(f"{m[1]} {m[2]} {m[3]}"))
        elif m := re.fullmatch(r"Which of these numbers is the (largest|smallest)\?", q):
            assert int(right) == (max if m[1] == "largest" else min)(map(int, r["choices"]))
        elif m := re.fullmatch(r"How many (\w+) are in (\d) (\w+)\?", q):
            assert int(right) == int(m[2]) * _UNITS[(m[1], m[3])]
        elif m := re.fullmatch(r"What is the capital of (.+)\?", q):
            assert right == _SOME_CAPITALS.get(m[1], right)
        if "boiling point of water" in q:
            assert right == "100"


def test_mini_code_training_has_humaneval_format_items_disjoint_from_the_test_problems():
    from idlora.data import synthetic_code
    from idlora.eval.humaneval import INSTRUCTION

    rows = synthetic.code_alpaca_like(600, 0)
    he = [r for r in rows if r["instruction"] == INSTRUCTION]
    assert len(he) == 200 and all(r["input"].startswith("def ") and '"""' in r["input"] for r in he)
    assert all(r["output"].startswith("def ") and '"""' not in r["output"] for r in he)
    test = synthetic_code.eval_problems()
    test_names = {p["entry_point"] for p in test.values()}
    train_names = {re.match(r"def (\w+)\(", r["output"])[1] for r in rows}
    assert not test_names & train_names
    assert not {n.rstrip("_0123456789") for n in train_names} & test_names
    bodies = {p["canonical_solution"].strip() for p in test.values()}
    assert not [r for r in rows if r["output"].split(":", 1)[1].strip() in bodies]
    assert not {p["prompt"] for p in test.values()} & {r["input"] for r in rows}
