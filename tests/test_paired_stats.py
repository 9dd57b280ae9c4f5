"""idlora.reports.paired against hand-computed values: seed-paired differences, the two-level bootstrap over seed
pairs and examples, the t interval beside it, the p-values, Holm and Benjamini-Hochberg, the verdicts, the validity
gates and the A/A calibration (on simulated runs whose truth is known)."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from idlora.reports import paired
from idlora.reports.paired import RunFacts

IDS = [f"e{i}" for i in range(10)]


def arm(ones_per_seed: dict, n: int = 10) -> dict:
    """seed -> scores: the first k of n examples scored 1, the rest 0."""
    return {s: {f"e{i}": int(i < k) for i in range(n)} for s, k in ones_per_seed.items()}


def zeros(seeds) -> dict:
    return arm({s: 0 for s in seeds})


def test_seed_differences_are_means_over_the_common_examples():
    a = {1: {"x": 1, "y": 1, "z": 0}, 2: {"x": 0, "y": 1, "z": 1}}
    b = {1: {"x": 0, "y": 1}, 2: {"x": 0, "y": 0, "w": 1}}  # common to every run: x, y
    assert paired.seed_differences(a, b) == {1: 0.5, 2: 0.5}


def test_unpaired_seeds_and_no_common_examples_are_refused():
    with pytest.raises(ValueError, match="seeds 3 are in one arm only"):
        paired.paired_bootstrap(arm({1: 2, 3: 1}), arm({1: 2}))
    with pytest.raises(ValueError, match="share no example ids"):
        paired.seed_differences({1: {"x": 1}}, {1: {"y": 1}})


def test_constant_differences_give_a_degenerate_interval_at_that_value():
    a = {s: {i: 0.75 for i in IDS} for s in (1, 2, 3)}  # pass@k-like scores
    b = {s: {i: 0.5 for i in IDS} for s in (1, 2, 3)}
    r = paired.paired_bootstrap(a, b, replicates=200)
    assert [r["effect"], r["low"], r["high"], r["t"]["low"], r["t"]["high"]] == pytest.approx([25.0] * 5)
    assert r["p_bootstrap"] == 1 / 200 and r["p_t"] == 0.0 and r["p"] == 1 / 200  # floored at 1/replicates
    assert r["n"] == 10 and r["seeds"] == [1, 2, 3] and r["per_seed"] == {1: 25.0, 2: 25.0, 3: 25.0}


def test_t_interval_and_t_p_by_hand():
    # per-seed differences 10, 20, 30 points: mean 20, sd 10, se 10/sqrt(3); t(0.975, 2 df) = 4.302652729749464
    r = paired.paired_bootstrap(arm({1: 1, 2: 2, 3: 3}), zeros((1, 2, 3)), replicates=200)
    half = 4.302652729749464 * 10 / math.sqrt(3)
    assert r["per_seed"] == pytest.approx({1: 10.0, 2: 20.0, 3: 30.0})
    assert (r["t"]["low"], r["t"]["mean"], r["t"]["high"]) == pytest.approx((20 - half, 20, 20 + half))
    # 2 df has a closed form: two-sided p = 1 - t / sqrt(2 + t^2), t = 20 / (10 / sqrt 3) = sqrt 12
    assert r["p_t"] == pytest.approx(1 - math.sqrt(12 / 14))
    assert r["p"] == max(r["p_t"], r["p_bootstrap"])
    # one-sided non-inferiority at margin 5 points: t = (20 + 5) / se, upper tail 1/2 - t / (2 sqrt(2 + t^2))
    t = 25 / (10 / math.sqrt(3))
    assert paired.t_test_p([10, 20, 30], margin=5) == pytest.approx(0.5 - t / (2 * math.sqrt(2 + t * t)))


def test_bootstrap_replicates_follow_the_resampling_rule():
    """Each replicate: seed pairs drawn with replacement, then one draw of ids shared by the drawn seeds."""
    diff = np.random.default_rng(5).integers(-1, 2, (3, 7)).astype(float)
    stat = paired.bootstrap_replicates(diff, replicates=50, seed=9)
    rng = np.random.default_rng(9)
    seeds, ids = rng.integers(0, 3, (50, 3)), rng.integers(0, 7, (50, 7))  # the draws the weights are made of
    by_hand = [100 * diff[np.ix_(s, i)].mean() for s, i in zip(seeds, ids)]
    assert stat == pytest.approx(by_hand)


def test_bootstrap_p_values_by_hand():
    stat = np.array([-2.0, 1.0, 2.0, 3.0, 4.0])
    assert paired.bootstrap_p(stat) == pytest.approx(0.4)  # 2 * P*(stat <= 0) = 2 * 1/5
    assert paired.bootstrap_p(np.array([-1.0, 0.0, 1.0, 2.0])) == 1.0  # 2 * min(2/4, 3/4), capped
    assert paired.bootstrap_p(np.arange(1.0, 11.0)) == pytest.approx(0.1)  # none <= 0: floored at 1/10
    assert paired.noninferiority_p(stat, margin=1.5) == pytest.approx(0.2)  # P*(stat <= -1.5)
    assert paired.noninferiority_p(stat, margin=3.0) == pytest.approx(0.2)  # floored at 1/5


def test_pairing_by_seed_matters_and_example_order_does_not():
    a, b = arm({1: 2, 2: 6, 3: 4}), arm({1: 1, 2: 5, 3: 7})
    base = paired.paired_bootstrap(a, b, replicates=300)
    relabelled = paired.paired_bootstrap({1: a[2], 2: a[3], 3: a[1]}, b, replicates=300)
    assert relabelled["effect"] == pytest.approx(base["effect"])  # the mean does not see the pairing ...
    assert relabelled["per_seed"] != base["per_seed"]  # ... the pairs, the interval and the t interval do
    assert (relabelled["low"], relabelled["high"]) != (base["low"], base["high"])
    assert relabelled["t"] != base["t"]
    ids = list(IDS)
    random.Random(0).shuffle(ids)
    reordered = paired.paired_bootstrap({s: {i: a[s][i] for i in ids} for s in a}, b, replicates=300)
    assert reordered == base


def test_one_seed_pair_reports_no_t_interval_and_caps_the_verdict():
    r = paired.paired_bootstrap(arm({7: 9}), zeros((7,)), replicates=100, margin=3)
    assert r["t"] is None and "at least 2 seed pairs, got 1" in r["t_why"]
    assert r["p"] == r["p_bootstrap"] and r["p_noninferior"] == r["p_noninferior_bootstrap"]
    judged = paired.judge_family([{"test": "superiority", **r}], "primary")[0]
    assert judged["verdict"] == "exploratory (1 seeds)"


def test_holm_and_benjamini_hochberg_by_hand():
    ps = [0.01, 0.04, 0.03, 0.005]
    # Holm: sorted 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 -> 0.06 (non-decreasing)
    assert paired.holm(ps) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # BH: sorted 0.005*4/1 = 0.02, 0.01*4/2 = 0.02, 0.03*4/3 = 0.04, 0.04*4/4 = 0.04 (non-increasing from the top)
    assert paired.benjamini_hochberg(ps) == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert paired.holm([0.5, 0.9]) == [1.0, 1.0] and paired.holm([]) == [] == paired.benjamini_hochberg([])


def test_the_textbook_fifteen_p_values():
    """Benjamini & Hochberg (1995)'s example: at 0.05, BH rejects 4 hypotheses, Holm 3."""
    ps = [0.0001, 0.0004, 0.0019, 0.0095, 0.0201, 0.0278, 0.0298, 0.0344, 0.0459, 0.3240, 0.4262, 0.5719, 0.6528,
          0.7590, 1.0]
    assert sum(q <= 0.05 for q in paired.benjamini_hochberg(ps)) == 4
    assert sum(q <= 0.05 for q in paired.holm(ps)) == 3
    assert paired.benjamini_hochberg(ps)[3] == pytest.approx(0.0095 * 15 / 4)


def result(effect, low, high, p=0.5, p_ni=0.5, seeds=3, t_high=None, margin=None):
    return {"effect": effect, "low": low, "high": high, "p": p, "p_noninferior": p_ni, "seeds": list(range(seeds)),
            "t": None if t_high is None else {"high": t_high}, "margin": margin}


def test_superiority_verdicts():
    assert paired.superiority_verdict(result(4, 1, 7), 0.01, 0.05) == "supported"
    assert paired.superiority_verdict(result(-4, -7, -1), 0.01, 0.05) == "contradicted"
    assert paired.superiority_verdict(result(4, -1, 7), 0.2, 0.05) == "not resolved"


def test_noninferiority_verdicts():
    assert paired.noninferiority_verdict(result(-1, -2.5, 0.5, margin=3), 0.01, 0.05) == "non-inferior"
    assert paired.noninferiority_verdict(result(-8, -11, -4, margin=3, t_high=-3.5), 1.0, 0.05) == "inferior"
    # one of the two upper bounds reaches -margin: not inferior
    assert paired.noninferiority_verdict(result(-8, -11, -4, margin=3, t_high=-2), 1.0, 0.05) == "not resolved"
    assert paired.noninferiority_verdict(result(-1, -6, 4, margin=3), 0.2, 0.05) == "not resolved"


def test_a_family_keeps_its_size_and_labels_invalid_and_thin_comparisons():
    family = [{"test": "superiority", **result(5, 1, 9, p=0.01)},
              {"test": "non-inferiority", **result(0, -2, 2, p_ni=0.02, margin=3)},
              {"test": "superiority", "invalid": "lora_s1 diverged (non-finite loss)"},
              {"test": "superiority", **result(6, 2, 10, p=0.001, seeds=2)}]
    judged = paired.judge_family(family, "primary")
    # Holm over 4 (the invalid one counts as p = 1): 0.001*4 = 0.004, 0.01*3 = 0.03, 0.02*2 = 0.04, 1
    assert [j["p_adjusted"] for j in judged] == pytest.approx([0.03, 0.04, 1.0, 0.004])
    assert [j["verdict"] for j in judged] == ["supported", "non-inferior",
                                              "invalid: lora_s1 diverged (non-finite loss)", "exploratory (2 seeds)"]
    # the exploratory family: BH at q = 0.1 over the same p's
    assert paired.judge_family(family[:2], "exploratory")[1]["p_adjusted"] == pytest.approx(0.02)


def test_divergence():
    assert paired.diverged([1.0, 0.8, 0.5]) is None
    assert paired.diverged([1.0, float("nan"), 0.5]) == "non-finite loss"
    # a last training batch's loss above the first's is batch noise, not divergence: the dev metric decides
    assert paired.diverged([1.0, 0.5, 1.2]) is None
    assert paired.diverged([1.0, 0.5, 1.2], dev=-1.7, start=-3.5) is None
    assert paired.diverged([1.0, 0.5, 0.4], dev=-3.6, start=-3.5).startswith("final dev metric -3.6 no better than "
                                                                            "its start -3.5")
    assert paired.diverged([]) == "no loss curve"


def test_validity_gate_names_the_runs():
    good = [RunFacts("idlora_s1", [1.0, 0.4], 0.30), RunFacts("idlora_s2", [1.0, 0.5], 0.34)]
    lora = [RunFacts("lora_s1", [1.0, 0.3], 0.35), RunFacts("lora_s2", [1.0, float("inf")], 0.36)]
    flat = [RunFacts("vera_s1", [1.0, 0.99], 0.20), RunFacts("vera_s2", [1.0, 0.98], 0.21)]
    assert paired.validity({"ID-LoRA": good, "LoRA": lora[:1]}, base_dev=0.2) is None
    why = paired.validity({"ID-LoRA": good, "LoRA": lora}, base_dev=0.2)
    assert why == "lora_s2 diverged (non-finite loss)"
    why = paired.validity({"ID-LoRA": good, "VeRA": flat}, base_dev=0.21)
    assert why == ("vera_s1 diverged (final dev metric 0.2 no better than its start 0.21, the untrained model's); "
                   "vera_s2 diverged (final dev metric 0.21 no better than its start 0.21, the untrained model's); "
                   "VeRA (vera_s1, vera_s2) does not beat the base on dev (0.205 vs 0.21)")


def simulate(rng: np.random.Generator, sets: int, seeds: int, examples: int, seed_sd: float) -> tuple[dict, dict]:
    """Two A/A seed sets over ``sets`` simulated benchmarks: per benchmark each example has a difficulty (logit
    ~ N(0, 1.5)), each run a seed effect (logit shift ~ N(0, seed_sd), drawn per arm and seed), and a run's
    score on an example is Bernoulli(sigmoid(difficulty + seed effect)): both arms from the same distribution."""
    out = ({}, {})
    for k in range(sets):
        logit = rng.normal(0, 1.5, examples)
        for side in out:
            shift = rng.normal(0, seed_sd, (seeds, 1))
            x = rng.random((seeds, examples)) < 1 / (1 + np.exp(-(logit + shift)))
            side[f"bench{k}"] = {100 + s: {f"e{i}": int(x[s, i]) for i in range(examples)} for s in range(seeds)}
    return out


# 250 simulated A/A benchmarks: a calibrated rate's binomial SD is sqrt(0.05 * 0.95 / 250) = 1.4 points, so a rate
# within 3 SD of 5% lies in [0.9%, 9.1%]. The seeds are fixed, so the numbers are too (quoted beside each assert).
SETS, BAND = 250, 3 * math.sqrt(0.05 * 0.95 / 250)


@pytest.mark.parametrize("seed_sd", [0.0, 1.0], ids=["example-noise-only", "seeds-differ"])
def test_aa_calibration_false_resolution_rate(seed_sd):
    """Three seed pairs (the fewest a verdict may rest on): the verdict's p resolves at most about 5% of true nulls
    whether the seeds differ only by example noise or by themselves, and the t test alone stays near 5% in both.
    The bootstrap alone does not: where the seeds differ it resolves far more than 5%, which is why the verdict's p
    also takes the t test's."""
    a, b = simulate(np.random.default_rng(0), SETS, seeds=3, examples=80, seed_sd=seed_sd)
    r = paired.aa_calibration(a, b, replicates=400)
    assert r["judged"] == SETS and r["resolved"] == round(r["rate"] * SETS)
    assert r["rate"] <= 0.05 + BAND  # example noise only: 0.0%; seeds differ: 6.4%
    assert abs(r["rate_t"] - 0.05) <= BAND  # 8.0%; 6.8%
    if seed_sd:
        assert r["rate_bootstrap"] > 0.05 + BAND  # 16.0% (example noise only: 0.4%)


def test_aa_calibration_refuses_sets_that_do_not_match():
    with pytest.raises(ValueError, match="same benchmarks"):
        paired.aa_calibration({"gsm8k": arm({1: 2})}, {"mmlu": arm({1: 2})})
    with pytest.raises(ValueError, match="as many seeds"):
        paired.aa_calibration({"gsm8k": arm({1: 2, 2: 3})}, {"gsm8k": arm({4: 2})})
