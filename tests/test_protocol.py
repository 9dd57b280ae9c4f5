"""The fair protocol (claims/protocol.yaml, idlora.protocol, idlora.reports.protocol): the shipped file's checks, the
runs it describes, the choice from tuning curves, and the pilot's verdicts against hand-computed values."""

import json

import numpy as np
import pytest
import yaml

from idlora.errors import ConfigError
from idlora.protocol import PROTOCOL_FILE, choose, final_overrides, grid, load_protocol, stage_of, tuning_overrides
from idlora.reports import protocol as report
from idlora.reports.preregistered import hypotheses, load_claims


@pytest.fixture(scope="module")
def shipped():
    return load_protocol()


def _write(tmp_path, doc):
    path = tmp_path / "protocol.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_the_shipped_protocol_gives_every_method_the_same_budget(shipped):
    grids = shipped["lr_grid"]
    assert len(grids["adapters"]) == len(grids["fft"]) == 5  # 4, then one more for every method (the amendment)
    ratios = np.diff(np.log10(grids["adapters"]))
    assert ratios == pytest.approx([0.5] * 4, abs=0.001)  # x sqrt(10)
    assert shipped["tuning_seed"] not in shipped["final_seeds"] + shipped["aa_seeds"]
    assert len(shipped["final_seeds"]) == 5  # the primary ID-LoRA vs LoRA pairs (issue 36)
    assert set(shipped["pilot"]["claims"]) <= {c["id"] for c in load_claims() if c["kind"] == "primary"}


@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(extra=1), "unknown key 'extra'"),
    (lambda d: d.update(aa_seeds=[100, 12, 13, 14, 15]), "must not share a seed"),
    (lambda d: d["lr_grid"].update(fft=[1e-5, 1e-4]), "as many rising positive candidates"),
    (lambda d: d.update(checkpoints=[32, 48, 128]), "multiples of the first"),
    (lambda d: d.update(objective={"metric": "test_accuracy", "tie": 0}), "objective must be"),
    (lambda d: d["horizon_check"].update(horizon=200), "horizon_check.horizon must be a multiple"),
    (lambda d: d["horizon_check"].update(methods=["idlora", "fft"]), "horizon_check.methods must be two of"),
    (lambda d: d["horizon_check"].update(seeds=[1]), "horizon_check must have exactly the keys"),
])
def test_a_broken_protocol_is_refused_with_the_fix(tmp_path, change, message):
    doc = yaml.safe_load(PROTOCOL_FILE.read_text())
    change(doc)
    with pytest.raises(ConfigError, match=message):
        load_protocol(_write(tmp_path, doc))


def test_tuning_and_final_runs_share_the_schedule_and_differ_in_length_and_seed(shipped):
    tune = tuning_overrides(shipped, "lora", 3.16e-4)
    final = final_overrides(shipped, "lora", {"lr": 3.16e-4, "step": 64}, seed=2)
    assert "train.schedule_steps=128" in tune and "train.schedule_steps=128" in final
    assert "scale.max_steps=128" in tune and "scale.max_steps=64" in final
    assert "seed=100" in tune and "seed=2" in final
    assert "eval.benchmarks=[]" in tune and not any(o.startswith("eval.benchmarks") for o in final)
    assert "++scale.lr.lora=0.000316" in tune and "++scale.lr.lora=0.000316" in final


def _tuning_record(method, lr, losses):
    """A tuning run's results record with dev losses at the shipped checkpoints 32/64/96/128."""
    return {"run_id": f"x.{method}_tune_lr{lr:g}_s100", "method": method,
            "config": {"run_tag": f"_tune_lr{lr:g}_s100", "seed": 100},
            "train": {"lr": lr, "dev_curve": [{"step": s, "loss": v, "per_task": {"t": v}}
                                              for s, v in zip((32, 64, 96, 128), losses)]}}


def test_the_choice_is_the_lowest_dev_loss_ties_to_the_smaller_lr_and_earlier_step(shipped):
    records = [_tuning_record("lora", 1e-4, [2.0, 1.9, 1.8, 1.7]),
               _tuning_record("lora", 3.16e-4, [1.6, 1.5, 1.45005, 1.45]),   # 1.45005 is within the tie of 1.45
               _tuning_record("lora", 1e-3, [1.5, 1.45, 1.46, 1.47]),
               _tuning_record("lora", 3.16e-3, [3.0, float("nan"), 9.0, 9.0]),
               _tuning_record("lora", 1e-2, [float("nan")] * 4)]  # a diverged run is no candidate
    pick = choose(shipped, records, ["lora"])["lora"]
    # lowest: 1.45 (3.16e-4 @ 128, 1e-3 @ 64); tied within 1e-4: 3.16e-4 @ 96 too; smaller lr, then earlier step
    assert (pick["lr"], pick["step"], pick["edge"]) == (3.16e-4, 96, False)
    edge = choose(shipped, [*records[:4], _tuning_record("lora", 1e-2, [1.0, 1.0, 1.0, 1.0])], ["lora"])["lora"]
    assert (edge["lr"], edge["step"], edge["edge"]) == (1e-2, 32, True)
    inner = choose(shipped, [*records[:4], _tuning_record("lora", 1e-2, [2.0] * 4)], ["lora"])["lora"]
    assert (inner["lr"], inner["edge"]) == (3.16e-4, False)  # the old top, 3.16e-3, is no edge any more
    with pytest.raises(ConfigError, match=r"tuning of lora is incomplete: no results file for lr \[0.00316, 0.01\]"):
        choose(shipped, records[:3], ["lora"])
    # a run at an lr outside the grid is not part of the budget, however low its dev loss
    outside = choose(shipped, [*records, _tuning_record("lora", 5e-4, [0.1, 0.1, 0.1, 0.1])], ["lora"])["lora"]
    assert (outside["lr"], outside["step"]) == (3.16e-4, 96)
    assert stage_of(records[0]) == "tune"


def _final(tmp_path, method, seed, scores, losses=(1.0, 0.5), dev=1.0, stage="final"):
    """A final run's record and per-example file: ``scores`` per benchmark key, a list of 0/1 by example id."""
    run_id = f"multitask_llama3.mini.{method}_{stage}_s{seed}"
    examples = {"gsm8k": [{"id": i, "score": s} for i, s in enumerate(scores["gsm8k"])],
                "mmlu": [{"id": i, "score": s} for i, s in enumerate(scores["mmlu"])],
                "cqa": [{"id": i, "score": s} for i, s in enumerate(scores["cqa"])],
                "humaneval": [{"id": i, "pass@1": s} for i, s in enumerate(scores["humaneval"])]}
    (tmp_path / f"{run_id}.examples.json").write_text(json.dumps(examples))
    return {"run_id": run_id, "method": method, "config": {"run_tag": f"_{stage}_s{seed}", "seed": seed},
            "experiment": "multitask_llama3", "metrics": dict.fromkeys(("gsm8k", "mmlu", "cqa", "humaneval_pass@1"), 0),
            "per_example_file": f"{run_id}.examples.json", "benchmarks": {"gsm8k": {"seconds": 2.0}},
            "provenance": {"hardware": {"torch_threads": 1}},
            "train": {"lr": 1e-3, "steps": 64, "seconds": 10.0, "loss_curve": list(losses),
                      "dev_curve": [{"step": 64, "loss": dev}]}}


def _pilot(tmp_path, shipped, a_dev=1.0, diverge=False):
    protocol = {**shipped, "final_seeds": [1, 2, 3], "aa_seeds": [11, 12, 13],
                "pilot": {**shipped["pilot"], "results_dir": str(tmp_path)}}
    rng = np.random.default_rng(0)
    records = []
    for seed in (1, 2, 3):
        lora = {k: list(rng.integers(0, 2, 40).astype(float)) for k in ("gsm8k", "mmlu", "cqa", "humaneval")}
        better = {k: [1.0 if i < 10 else v for i, v in enumerate(vals)] for k, vals in lora.items()}
        records.append(_final(tmp_path, "lora", seed, lora))
        records.append(_final(tmp_path, "idlora", seed, better, dev=a_dev,
                              losses=(1.0, float("nan")) if diverge and seed == 2 else (1.0, 0.5)))
    records.append({"run_id": "base", "method": "base", "config": {"run_tag": "_protocol", "seed": 100},
                    "experiment": "multitask_llama3", "metrics": {},
                    "benchmarks": {}, "provenance": {"hardware": {}},
                    "train": {"lr": None, "steps": 0, "seconds": 1.0, "dev_curve": [{"step": 0, "loss": 2.0}]}})
    return protocol, records


def test_pilot_verdicts_are_seed_paired_and_holm_adjusted_over_the_whole_primary_family(tmp_path, shipped):
    (tmp_path / "runs").mkdir()
    protocol, records = _pilot(tmp_path / "runs", shipped)
    protocol["pilot"]["results_dir"] = str(tmp_path)
    v = report.pilot_verdicts(protocol, records)
    family = len(hypotheses(load_claims(), "primary"))
    assert v["family_size"] == family == 26
    by_bench = {c["benchmark"]: c for c in v["verdicts"] if c["claim"] == "t2_idlora_ni_lora"}
    assert set(by_bench) == {"gsm8k", "mmlu", "cqa", "humaneval_pass@1"}
    # the pilot's other claims (ID-LoRA vs HydraLoRA, vs DoRA) have no final runs here: pending, with p = 1
    others = [c for c in v["verdicts"] if c["claim"] != "t2_idlora_ni_lora"]
    assert {c["verdict"] for c in others} == {
        "pending: hydralora lacks final seed(s) [1, 2, 3] of [1, 2, 3]; judged once all have run",
        "pending: dora lacks final seed(s) [1, 2, 3] of [1, 2, 3]; judged once all have run"}
    assert all(c["p_adjusted"] == 1 for c in others)
    for bench, c in by_bench.items():
        key = "humaneval" if bench.startswith("humaneval") else bench
        a = {r["config"]["seed"]: json.loads((tmp_path / "runs" / r["per_example_file"]).read_text())[key]
             for r in records if r["method"] == "idlora"}
        b = {r["config"]["seed"]: json.loads((tmp_path / "runs" / r["per_example_file"]).read_text())[key]
             for r in records if r["method"] == "lora"}
        field = "pass@1" if key == "humaneval" else "score"
        by_hand = np.mean([np.mean([x[field] - y[field] for x, y in zip(a[s], b[s])]) for s in (1, 2, 3)])
        assert c["effect"] == pytest.approx(100 * by_hand)
        assert c["seeds"] == [1, 2, 3] and c["n"] == 40 and c["margin"] in (3, 5)
    # Holm over 26 hypotheses, 22 of them at p = 1: the smallest of the 4 is multiplied by 26, the next by 25, ...
    ps = sorted(c["p_noninferior"] for c in by_bench.values())
    expected = np.maximum.accumulate([min(1.0, (family - i) * p) for i, p in enumerate(ps)])
    assert sorted(c["p_adjusted"] for c in by_bench.values()) == pytest.approx(list(expected))


def test_a_diverged_run_or_an_arm_below_the_base_makes_the_verdict_invalid(tmp_path, shipped):
    (tmp_path / "runs").mkdir()
    protocol, records = _pilot(tmp_path / "runs", shipped, diverge=True)
    protocol["pilot"]["results_dir"] = str(tmp_path)
    verdicts = [c for c in report.pilot_verdicts(protocol, records)["verdicts"] if c["claim"] == "t2_idlora_ni_lora"]
    assert all(c["verdict"].startswith("invalid: ") and "idlora_final_s2 diverged" in c["verdict"] for c in verdicts)
    protocol, records = _pilot(tmp_path / "runs", shipped, a_dev=2.5)  # dev loss 2.5 against the base's 2.0
    verdicts = [c for c in report.pilot_verdicts(protocol, records)["verdicts"] if c["claim"] == "t2_idlora_ni_lora"]
    assert len(verdicts) == 4 and all("does not beat the base on dev" in c["verdict"] for c in verdicts)


def test_the_report_writes_every_file_and_the_aa_waits_for_its_runs(tmp_path, shipped):
    (tmp_path / "runs").mkdir()
    protocol, records = _pilot(tmp_path / "runs", shipped)
    protocol["pilot"]["results_dir"] = str(tmp_path)
    for r in records:
        (tmp_path / "runs" / f"{r['run_id']}.json").write_text(json.dumps(r))
    paths = report.write_report(protocol)
    assert {p.name for p in paths} >= {"tuning.json", "tuning.md", "pilot.json", "pilot.md", "curves.png"}
    text = (tmp_path / "pilot.md").read_text()
    assert "Not run yet" in text and "t2_idlora_ni_lora" in text
    assert "Not chosen yet: tuning of idlora is incomplete" in (tmp_path / "tuning.md").read_text()
    # the A/A set: LoRA again on other seeds
    for seed, r in zip((11, 12, 13), [r for r in records if r["method"] == "lora"]):
        aa = {**r, "run_id": f"aa{seed}", "config": {"run_tag": f"_aa_s{seed}", "seed": seed}}
        (tmp_path / "runs" / f"aa{seed}.json").write_text(json.dumps(aa))
    aa = report.pilot_verdicts(protocol, report.load_records(protocol))["aa"]
    # the A/A set re-uses the LoRA runs' own scores: every per-seed difference is 0 and nothing resolves
    assert aa["pairs"] == 3 and aa["judged"] == 4 and aa["resolved"] == 0
    assert all(r["effect"] == 0 for r in aa["benchmarks"].values())


def test_a_row_of_several_experiments_is_judged_per_benchmark_against_its_own_base(tmp_path, shipped):
    """Table 1's rows hold one run per task: a benchmark is judged on the runs that scored it, gated by the base
    of their experiment; runs made before the protocol (no dev loss) make the verdict invalid, with their names."""
    from idlora.reports import claims, prereg, verdicts

    protocol, records = _pilot(tmp_path, shipped)
    finals = [r for r in records if r["method"] != "base"]
    for r in finals:
        r["metrics"] = {"gsm8k": 0.0}
    other = {**records[0], "run_id": "code_run", "experiment": "code_llama3", "metrics": {"humaneval_pass@1": 0.0}}
    base = records[-1]
    claim = next(c for c in load_claims() if c["id"] == "t1_idlora_ni_lora")
    a = [r for r in finals if r["method"] == "idlora"] + [other]
    b = [r for r in finals if r["method"] == "lora"]
    gsm8k = verdicts.comparison(claim, "gsm8k", a, b, [base], tmp_path)
    assert gsm8k["invalid"] is None and gsm8k["seeds"] == [1, 2, 3] and "code_run" not in gsm8k["runs"]["a"]
    code = verdicts.comparison(claim, "humaneval_pass@1", a, b, [base], tmp_path)
    assert code["invalid"] == "no untrained base run with a dev loss (the gate's reference)"
    old = [{**r, "train": {**r["train"], "dev_curve": []}} for r in b]
    stale = verdicts.comparison(claim, "gsm8k", a, old, [base], tmp_path)
    assert stale["invalid"].startswith("no dev loss recorded (runs made before the protocol): ")
    tests = verdicts.judge(load_claims(), {"t1_idlora_ni_lora": (a, b, [base], tmp_path)})
    assert {t["claim"] for t in tests} == {c["id"] for c in load_claims() if c["test"] != "count"}
    md = claims.write([], "mini", tmp_path / "out", prereg.preregistered_markdown(tests, "mini"))[1].read_text()
    assert md.index("## Pre-registered claims") < md.index("## Earlier verdicts")
    row = next(line for line in md.splitlines() if line.startswith("| t1_idlora_ni_lora | primary | gsm8k |"))
    assert "tables' runs: at mini, 3 seed pairs (3 vs 3 runs), paired by seed and example, lr 0.001 vs 0.001" in row


def test_make_claims_judges_the_pilots_claims_on_its_final_runs_and_prints_the_aa_rate(tmp_path, shipped,
                                                                                     monkeypatch):
    """CLAIMS.md opens with the primary claims at a glance and the A/A rate; a claim the pilot covers is judged on
    its final runs (the pilot report's verdict, the same numbers), the others on the tables' runs; the primary
    effects' plot is written beside it."""
    from idlora.reports import prereg

    (tmp_path / "runs").mkdir()
    protocol, records = _pilot(tmp_path / "runs", shipped)
    protocol["pilot"]["results_dir"] = str(tmp_path)
    for seed, r in zip((11, 12, 13), [r for r in records if r["method"] == "lora"]):
        records.append({**r, "run_id": f"aa{seed}", "config": {"run_tag": f"_aa_s{seed}", "seed": seed}})
    for r in records:
        r["scale"] = "mini"
    protocol["regenerated"] = []  # every other claim on the (empty) tables' runs, whatever the repository has run
    from idlora.reports.tables import from_runs

    monkeypatch.setattr(from_runs, "load_protocol", lambda: protocol)
    monkeypatch.setattr(prereg, "load_protocol", lambda: protocol)
    monkeypatch.setattr(prereg, "load_records", lambda p: records)
    empty = tmp_path / "empty"
    empty.mkdir()
    paths = prereg.make_claims("mini", empty, empty / "efficiency.json", tmp_path / "out")
    assert [p.name for p in paths] == ["claims.json", "CLAIMS.md", "claims_primary.png"]
    md, doc = paths[1].read_text(), json.loads(paths[0].read_text())
    pilot = {(v["claim"], v["benchmark"]): v for v in report.pilot_verdicts(protocol, records)["verdicts"]}
    for t in doc["preregistered"]:
        if t["claim"] == "t2_idlora_ni_lora":
            assert t["under"] == str(tmp_path / "runs") and t["effect"] == pilot[(t["claim"], t["benchmark"])]["effect"]
            assert t["verdict"] == pilot[(t["claim"], t["benchmark"])]["verdict"]
        elif t["claim"] in protocol["pilot"]["claims"]:
            assert t["verdict"].startswith("pending: ") and t["under"] == str(tmp_path / "runs")
        else:
            assert t["verdict"] == "invalid: no runs"
    assert md.index("## At a glance") < md.index("## Pre-registered claims") < md.index("## Earlier verdicts")
    assert "| t2_idlora_ni_lora | 4 | " in md and "fair protocol, 3 seed pairs |" in md
    aa = doc["aa_calibration"]
    assert aa["pairs"] == 3 and f"{aa['resolved']} of 4 benchmarks resolved, a false-resolution rate of" in md
    assert paths[2].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_table5_at_mini_prints_the_tuned_lr_and_steps_and_table4_says_it_is_not_tuned(monkeypatch):
    from idlora import protocol as protocol_module
    from idlora.reports.tables import hyperparams

    records = [_tuning_record("idlora", lr, losses) for lr, losses in
               ((1e-4, [2.0, 1.9, 1.8, 1.7]), (3.16e-4, [1.6, 1.2, 1.3, 1.4]), (1e-3, [1.5, 1.45, 1.46, 1.47]),
                (3.16e-3, [3.0, 3.0, 3.0, 3.0]), (1e-2, [4.0, 4.0, 4.0, 4.0]))]
    monkeypatch.setattr(protocol_module, "load_records", lambda protocol: records)
    t5 = hyperparams.build("table5", "mini")
    md = t5.to_markdown()
    assert "| multitask_llama3 | 32 / 128 | 64 / 256 | 0.000316 / 5e-05 |" in md
    assert "| 12 / 0 | 64 steps (of 128) / 2 |" in md and "results/protocol/pilot/tuning.md" in md
    t4 = hyperparams.build("table4", "mini").to_markdown()
    assert "| 0.001 / 5e-05 |" in t4 and "Not yet tuned under the fair protocol" in t4
    monkeypatch.setattr(protocol_module, "load_records", lambda protocol: records[:2])  # incomplete: config values
    assert "| 0.001 / 5e-05 |" in hyperparams.build("table5", "mini").to_markdown()


def test_the_regeneration_cost_is_counted_per_arm_and_per_method_from_the_pilots_median_times(shipped, monkeypatch):
    """Hand-counted: 2 arms of table1 (5 and 1 seeds, one experiment) and 1 arm of table2 (3 seeds, a method table1
    tuned already); a tuning run 100 s (median of 3), a final run 200 s (median of 3: 150 + 50 scoring is 200)."""
    from idlora.reports import protocol_cost

    arms = {"table1": {("gsm8k", "idlora", ()): 5, ("gsm8k", "lora", ()): 1},
            "table2": {("multitask", "idlora", ("x=1",)): 3}}
    monkeypatch.setattr(protocol_cost, "table_arms", lambda protocol, scale="mini": arms)
    records = [{"config": {"run_tag": f"_tune_lr{lr}_s100"}, "train": {"seconds": s}}
               for lr, s in ((1e-4, 90.0), (1e-3, 100.0), (3e-3, 400.0))]
    records += [{"config": {"run_tag": f"_final_s{i}"}, "train": {"seconds": s}, "benchmarks": {"gsm8k": {"seconds": e}}}
                for i, (s, e) in enumerate(((150.0, 50.0), (100.0, 0.0), (900.0, 100.0)))]
    p = protocol_cost.projection(shipped, records)
    assert p["unit"] == {"tune_s": 100.0, "final_s": 200.0, "n_tune": 3, "n_final": 3}
    t1, t2 = p["tables"]
    assert (t1["arms"], t1["final_runs"], t1["tune_runs_per_arm"], t1["tune_runs_per_method"]) == (2, 7, 10, 10)
    assert (t2["arms"], t2["final_runs"], t2["tune_runs_per_arm"], t2["tune_runs_per_method"]) == (1, 4, 5, 0)
    assert t1["wall_h_per_arm"] == pytest.approx((10 * 100 + 7 * 200) / 3600 / 2)
    assert t2["cpu_h_per_method"] == pytest.approx(4 * 200 / 3600)
    assert p["total"]["final_runs"] == 11 and "| **total** | 3 | 11 | 15 |" in protocol_cost.markdown(p)
    from idlora.regeneration import seeds_of

    assert seeds_of(shipped, "table2", "llama3_8b/idlora", load_claims()) == [1, 2, 3, 4, 5]  # a primary claim's
    assert seeds_of(shipped, "table2", "llama3_8b/vera", load_claims()) == [1]  # in no claim


def test_the_measured_cost_of_a_regenerated_table_sums_only_the_runs_trained_for_it(shipped, monkeypatch):
    """Hand-counted: table3 trains x and y (y has no results file yet) and borrows table2's z: 1 of 2 found,
    100 s of training + 50 s of scoring = 150 s."""
    from idlora.reports import protocol_cost

    def run(run_id):
        return type("R", (), {"config": lambda self: type("C", (), {"run_id": run_id})()})()

    served = [(None, run("x"), "table3"), (None, run("y"), "table3"), (None, run("z"), "table2")]
    monkeypatch.setattr(protocol_cost.regeneration, "served_final_runs", lambda *a, **k: served)
    records = [{"run_id": "x", "train": {"seconds": 100.0}, "benchmarks": {"mmlu": {"seconds": 50.0}}},
               {"run_id": "z", "train": {"seconds": 999.0}}]
    rows = protocol_cost.measured({**shipped, "regenerated": ["table3"]}, records)
    assert rows == [{"table": "table3", "runs": 2, "found": 1, "cpu_h": 150 / 3600, "median_s": 150.0,
                     "served_by_earlier": 1}]
    assert "| table3 | 2 | 1 | 1 | 0.0 | 150 | 0.0 |" in "\n".join(protocol_cost._measured_markdown(rows))


def test_the_protocols_runs_are_refused_from_uncommitted_code_before_any_launch(shipped, monkeypatch):
    """A run's record names its commit: with a changed or untracked code file (or no git) nothing is launched and the
    message names the files and the fix; with every run complete nothing needs the check."""
    from idlora.runs import launch, tuning

    launched = []
    monkeypatch.setattr(tuning, "run_all_locally", lambda *a: launched.append(a) or [])
    monkeypatch.setattr(tuning, "is_complete", lambda run, directory: False)
    monkeypatch.setattr(launch, "uncommitted_code", lambda: [" M idlora/protocol.py", "?? idlora/new.py"])
    runs = tuning.tuning_runs(shipped)
    with pytest.raises(ConfigError, match=r"2 file\(s\) differ from HEAD: M idlora/protocol.py; \?\? idlora/new.py"
                                          r"\. Commit them, or run from a clean worktree"):
        tuning.run_missing(shipped, runs)
    monkeypatch.setattr(launch, "uncommitted_code", lambda: None)
    with pytest.raises(ConfigError, match="run them in a git checkout"):
        tuning.run_missing(shipped, runs)
    assert launched == []
    monkeypatch.setattr(tuning, "is_complete", lambda run, directory: True)
    tuning.run_missing(shipped, runs)
    assert len(launched) == 1
    monkeypatch.setattr(tuning, "is_complete", lambda run, directory: False)
    monkeypatch.setattr(launch, "uncommitted_code", lambda: [])
    tuning.run_missing(shipped, runs)
    assert len(launched) == 2


def test_uncommitted_code_lists_an_untracked_module_and_ignores_results(tmp_path, monkeypatch):
    import subprocess

    from idlora import results

    repo = tmp_path / "repo"
    (repo / "idlora").mkdir(parents=True)
    (repo / "results").mkdir()
    (repo / "idlora" / "a.py").write_text("x = 1\n")
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], cwd=repo, check=True)
    subprocess.run([*git, "add", "."], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "c"], cwd=repo, check=True)
    monkeypatch.setattr(results, "__file__", str(repo / "idlora" / "results.py"))
    assert results.uncommitted_code() == []
    (repo / "results" / "run.json").write_text("{}")
    (repo / "idlora" / "new.py").write_text("y = 2\n")
    (repo / "idlora" / "a.py").write_text("x = 3\n")
    assert sorted(results.uncommitted_code()) == [" M idlora/a.py", "?? idlora/new.py"]
    # the record's -dirty flag and its diff follow the same rule: the code, untracked modules included, not results
    assert results.git_commit().endswith("-dirty")
    diff = results.git_diff()
    assert "b/idlora/a.py" in diff and "+x = 3" in diff and "b/idlora/new.py" in diff and "+y = 2" in diff
    assert "results/run.json" not in diff
    subprocess.run([*git, "add", "idlora"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "code"], cwd=repo, check=True)
    (repo / "results" / "run.json").write_text('{"changed": 1}')
    assert not results.git_commit().endswith("-dirty") and results.git_diff() == ""


def test_a_claim_is_judged_only_once_every_pre_registered_seed_has_run(tmp_path, shipped):
    """The seeds are fixed in advance: with one seed of one arm missing the claim is pending (p = 1 in the family),
    not judged on the seeds that happened to land first."""
    (tmp_path / "runs").mkdir()
    protocol, records = _pilot(tmp_path / "runs", shipped)
    short = [r for r in records if not (r["method"] == "idlora" and r["config"]["seed"] == 3)]
    arms, pending = report.pilot_arms(protocol, short)
    assert "t2_idlora_ni_lora" not in arms
    assert pending["t2_idlora_ni_lora"] == "idlora lacks final seed(s) [3] of [1, 2, 3]; judged once all have run"
    verdicts = [c for c in report.pilot_verdicts(protocol, short)["verdicts"] if c["claim"] == "t2_idlora_ni_lora"]
    assert len(verdicts) == 4 and all(c["verdict"].startswith("pending: idlora lacks") and "effect" not in c
                                      for c in verdicts)
    assert set(report.pilot_arms(protocol, records)[0]) == {"t2_idlora_ni_lora"}


def _horizon_record(method, lr, losses, horizon=256):
    return {"run_id": f"x.{method}_horizon_{horizon}_lr{lr:g}_s100", "method": method,
            "config": {"run_tag": f"_horizon_{horizon}_lr{lr:g}_s100", "seed": 100},
            "train": {"lr": lr, "dev_curve": [{"step": 32 * (i + 1), "loss": v} for i, v in enumerate(losses)]}}


def test_the_horizon_check_runs_the_chosen_lrs_stretched_and_compares_the_gap(shipped):
    from idlora.protocol import horizon_overrides
    from idlora.runs.tuning import stage_runs

    flat = [1.0, 0.9, 0.8, 0.7]
    records = [_tuning_record(m, lr, [v + (0.1 if m == "idlora" else 0) + (0 if lr == 1e-3 else 0.5) for v in flat])
               for m in ("idlora", "lora") for lr in grid(shipped, m)]
    runs = stage_runs(shipped, "horizon", records)
    assert [r.method for r in runs] == ["idlora", "lora"]  # the check's two methods, at their chosen lrs
    assert "++scale.lr.idlora=0.001" in runs[0].overrides and "train.schedule_steps=256" in runs[0].overrides
    overrides = horizon_overrides(shipped, "lora", 1e-3)
    assert "scale.max_steps=256" in overrides and "seed=100" in overrides and "eval.benchmarks=[]" in overrides
    assert stage_of({"config": {"run_tag": "_horizon_256_lr0.001_s100"}}) == "horizon"
    # chosen: 0.8 (idlora) and 0.7 (lora) at step 128, a gap of +0.1
    assert report.horizon_summary(shipped, records)["verdict"].startswith("not run yet")
    stretched = [0.6] * 8
    ok = report.horizon_summary(shipped, [*records, _horizon_record("idlora", 1e-3, [0.64] * 8),
                                          _horizon_record("lora", 1e-3, stretched)])
    assert ok["gap"] == {"chosen": 0.1, "stretched": 0.04} and ok["change"] == -0.06 and ok["binds"]
    assert ok["verdict"].startswith("binds: the gap moved -0.0600, beyond ±0.04")
    held = report.horizon_summary(shipped, [*records, _horizon_record("idlora", 1e-3, [0.68] * 8),
                                            _horizon_record("lora", 1e-3, stretched)])
    assert held["change"] == pytest.approx(-0.02) and not held["binds"]
    # a stretched run at another lr than the choice is not the check's
    other = report.horizon_summary(shipped, [*records, _horizon_record("idlora", 3.16e-4, [0.5] * 8),
                                             _horizon_record("lora", 1e-3, stretched)])
    assert other["verdict"].startswith("not run yet")
    # a tuning choice still reads only the tuning runs
    assert choose(shipped, [*records, _horizon_record("lora", 1e-4, [0.1] * 8)], ["lora"])["lora"]["lr"] == 1e-3
