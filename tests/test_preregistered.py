"""The committed pre-registered claims load and obey the rules; each rule's refusal names its fix."""

from __future__ import annotations

import copy

import pytest

from idlora.errors import ConfigError
from idlora.reports import preregistered as pre

CLAIMS = pre.load_claims()


def one(**changes) -> dict:
    """A valid non-inferiority claim, changed."""
    claim = {"id": "c", "kind": "exploratory", "text": "ID-LoRA outperforms LoRA", "table": "table2",
             "arm_a": "llama3_8b/idlora", "arm_b": "llama3_8b/lora", "benchmarks": ["mmlu", "gsm8k"],
             "test": "non-inferiority", "margin": {"mmlu": 3, "gsm8k": 5}}
    claim.update(changes)
    return {k: v for k, v in claim.items() if v is not None}


def refused(*claims) -> str:
    with pytest.raises(ConfigError) as e:
        pre.check_claims({"claims": list(claims)})
    return str(e.value)


def test_the_committed_file_obeys_the_rules():
    assert pre.CLAIMS_FILE.relative_to(pre.CLAIMS_FILE.parents[1]).as_posix() == "claims/preregistered.yaml"
    primary = [c for c in CLAIMS if c["kind"] == "primary"]
    assert 1 <= len(primary) <= pre.MAX_PRIMARY
    assert all("margin" in c for c in CLAIMS if c["test"] == "non-inferiority")
    assert all("params" in c for c in CLAIMS if c["table"] == "table7")
    assert {c["test"] for c in CLAIMS if c["table"] == "table6"} == {"count"}
    header = pre.CLAIMS_FILE.read_text(encoding="utf-8").split("\nclaims:")[0]
    assert "Holm at alpha = 0.05 across the primary" in header and "Benjamini-Hochberg at q = 0.1" in header


def test_the_committed_texts_say_what_the_paper_says():
    texts = {c["id"]: c["text"] for c in CLAIMS}
    assert "guided our choice of k = 4 (or k = 6)" in texts["t8_k4"]
    assert "is best" not in " ".join(texts.values())
    assert all(pre.within_printed_precision(n, p) for n, p in ((10_485_760, "10.4M"), (1_347_158_016, "1.3B")))


def test_families():
    primary = pre.hypotheses(CLAIMS, "primary")
    assert ("t2_idlora_ni_lora", "mmlu") in primary and len(primary) == len(set(primary))
    assert not any(cid.startswith("t6_") for cid, _ in pre.hypotheses(CLAIMS, "exploratory"))  # counts: no family
    assert pre.margin(one(), "mmlu") == 3 and pre.margin(one(margin=4), "gsm8k") == 4
    assert pre.margin(one(test="superiority", margin=None), "mmlu") is None


def test_unknown_keys_and_tests_are_refused():
    assert "unknown key 'alpha'; a non-inferiority claim takes id, kind" in refused(one(alpha=0.1))
    assert "test 'better' is not one of superiority, non-inferiority, count" in refused(one(test="better"))
    assert "kind 'main' is not one of primary, exploratory" in refused(one(kind="main"))
    assert "expected one top-level key `claims:`" in str(pytest.raises(ConfigError, pre.check_claims, {"x": []}).value)


def test_more_than_eight_primary_claims_are_refused():
    claims = [one(id=f"p{i}", kind="primary") for i in range(9)]
    assert "9 primary claims (p0, p1, p2, p3, p4, p5, p6, p7, p8): at most 8; make the others exploratory" in \
        refused(*claims)
    pre.check_claims({"claims": claims[:8]})


def test_margins():
    assert "missing 'margin': a non-inferiority claim states its margin in points" in refused(one(margin=None))
    assert "a superiority claim takes no margin" in refused(one(test="superiority"))
    assert "give one margin per benchmark" in refused(one(margin={"mmlu": 3}))
    assert "a positive number of points" in refused(one(margin=-3))


def test_unknown_names_are_refused():
    assert "unknown table 'table9'" in refused(one(table="table9"))
    why = refused(one(arm_b="llama3_8b/adalora"))
    assert "arm_b 'llama3_8b/adalora' is not a row of experiments/table2.yaml" in why
    assert "unknown benchmark 'hexphi_refusal' for table2" in refused(one(benchmarks=["mmlu", "hexphi_refusal"],
                                                                          margin=3))
    assert "arm_a and arm_b are the same row" in refused(one(arm_b="llama3_8b/idlora"))
    assert "two claims have this id" in refused(one(), one())


def test_parameter_budget_rules():
    t7 = one(table="table7", arm_a="idlora_r256", arm_b="lora_r32", test="superiority", margin=None,
             benchmarks=["mmlu"])
    assert "add params: {match_within: 0.10}" in refused(t7)
    assert "at most 0.1 (counts within 10%)" in refused({**t7, "params": {"match_within": 0.2}})
    assert "exactly one of match_within" in refused({**t7, "params": {"match_within": 0.1, "ratio": 1.0}})
    matched, named = {**t7, "params": {"match_within": 0.1}}, {**t7, "params": {"ratio": 1.51}}
    pre.check_claims({"claims": [matched]})
    assert pre.budget_problem(matched, 2_465_280, 2_442_240) is None  # ratio 1.01
    assert "not within 10%" in pre.budget_problem(matched, 1_843_200, 1_221_120)  # ratio 1.51
    assert pre.budget_problem(named, 1_843_200, 1_221_120) is None
    assert "not the ratio 1.51" in pre.budget_problem(named, 910_080, 305_280)  # ratio 2.98
    assert pre.budget_problem(one(), 1, 2) is None  # no budget rule


def test_count_claims():
    count = {"id": "n", "kind": "exploratory", "text": "Table 6: ...", "table": "table6", "test": "count",
             "rule": "each count agrees with the printed figure"}
    pre.check_claims({"claims": [copy.deepcopy(count)]})
    assert "a count claim takes no margin" in refused({**count, "margin": 3})
    assert "missing 'rule'" in refused({k: v for k, v in count.items() if k != "rule"})
    assert not pre.within_printed_precision(10_600_001, "10.4M") and pre.within_printed_precision(49_000_000, "49.0M")


def test_a_missing_file_names_where_the_claims_live(tmp_path):
    with pytest.raises(ConfigError, match="claims/preregistered.yaml"):
        pre.load_claims(tmp_path / "none.yaml")
