"""Evidence in the tables of runs: seeds averaged with an interval over seeds and examples, a run whose metric
disagrees with its per-example scores left out, base rows, rows served by an earlier identical run."""

import numpy as np
import pytest

from idlora import experiments
from idlora.experiments import Run
from idlora.reports.tables import build_table, from_runs
from idlora.stats import bootstrap_ci
from test_tables import _write_run


def _rows(n, correct):
    return [{"id": i, "score": 1.0 if i < correct else 0.0} for i in range(n)]


def _list(runs):
    return {"table": "table2", "significance": {"method": "idlora", "against": "lora"}, "runs": runs}


@pytest.fixture
def seeded(monkeypatch):
    runs = [Run("multitask_llama3", "lora", ["run_tag=_s0"], row="llama3_8b/lora"),
            Run("multitask_llama3", "idlora", ["seed=1", "run_tag=_s1"], row="llama3_8b/idlora"),
            Run("multitask_llama3", "idlora", ["seed=2", "run_tag=_s2"], row="llama3_8b/idlora"),
            Run("multitask_llama3", "base", row="llama3_8b/base")]
    monkeypatch.setattr(experiments, "experiment_list", lambda table: _list(runs))
    return runs


def test_seeds_are_averaged_and_the_interval_covers_seeds_and_examples(tmp_path, seeded):
    n = 40
    _write_run(tmp_path, seeded[0], "tiny", {"gsm8k": ({"gsm8k": 25.0}, _rows(n, 10))})
    _write_run(tmp_path, seeded[1], "tiny", {"gsm8k": ({"gsm8k": 75.0}, _rows(n, 30))})
    _write_run(tmp_path, seeded[2], "tiny", {"gsm8k": ({"gsm8k": 50.0}, _rows(n, 20))})
    t = build_table("table2", "tiny", str(tmp_path))
    cell = t.cell("llama3_8b/idlora", "gsm8k")
    ref = bootstrap_ci([{str(r["id"]): r["score"] for r in _rows(n, c)} for c in (30, 20)])
    assert cell["ours"] == 62.5 and cell["seeds"] == 2 and cell["n"] == n and len(cell["runs"]) == 2
    assert (cell["ci_low"], cell["ci_high"]) == pytest.approx((100 * ref["low"], 100 * ref["high"]))
    # † on seed-averaged scores: ids 0-9 tie (1 vs 1), 10-19 win (1 vs 0), 20-29 win (0.5 vs 0), 30-39 tie
    assert cell["significant"] is True
    sign = next(x for x in t.notes if x.startswith("†"))
    assert "exact paired sign test" in sign and "averaged over its seeds" in sign and "n = 20" in sign
    assert f"62.5† ±{(cell['ci_high'] - cell['ci_low']) / 2:.1f}" in t.to_markdown()
    assert "{\\scriptsize$\\pm$" in t.to_latex()


def test_a_metric_that_is_not_its_per_example_mean_is_not_trusted(tmp_path, seeded):
    _write_run(tmp_path, seeded[1], "tiny", {"gsm8k": ({"gsm8k": 90.0}, _rows(40, 30))})  # the mean is 75
    _write_run(tmp_path, seeded[2], "tiny", {"gsm8k": ({"gsm8k": 50.0}, _rows(40, 20))})
    t = build_table("table2", "tiny", str(tmp_path))
    cell = t.cell("llama3_8b/idlora", "gsm8k")
    assert cell["ours"] == 50.0 and cell["seeds"] == 1  # only the consistent run
    assert any("gsm8k is 90.0 but the mean of its 40 per-example scores is 75" in x for x in t.notes)


def test_the_base_row_comes_first_with_its_label_and_no_paper_numbers(tmp_path, seeded):
    _write_run(tmp_path, seeded[3], "tiny", {"gsm8k": ({"gsm8k": 5.0}, _rows(40, 2))}, trainable=0)
    t = build_table("table2", "tiny", str(tmp_path))
    assert t.rows[0] == "llama3_8b/base" and t.rows[1:] == ["llama3_8b/lora", "llama3_8b/idlora"]
    assert t.row_labels["llama3_8b/base"] == "LLaMA-3-8B Base (untrained)"
    assert t.cell("llama3_8b/base", "params_pct")["ours"] == 0.0
    assert all(t.cell("llama3_8b/base", c)["paper"] is None for c in t.columns)
    assert "| LLaMA-3-8B Base (untrained) | 0.0 | 5.0 ±" in t.to_markdown()
    assert from_runs.order_rows(["k2", "base", "k4"], nested=False) == ["base", "k2", "k4"]


def test_rows_served_by_an_earlier_identical_run_read_its_file_and_say_so(tmp_path, monkeypatch):
    runs = [Run("multitask_llama3", "lora", row="llama3_8b/lora"),
            Run("multitask_llama3", "lora", ["run_tag=_m"], row="mistral_7b/lora")]
    monkeypatch.setattr(experiments, "experiment_list", lambda table: _list(runs))
    monkeypatch.setattr(experiments, "canonical_runs", lambda rs: [rs[0], rs[0]])
    run_id = _write_run(tmp_path, runs[0], "tiny", {"gsm8k": ({"gsm8k": 25.0}, _rows(40, 10))})
    t = build_table("table2", "tiny", str(tmp_path))
    assert t.cell("mistral_7b/lora", "gsm8k")["ours"] == 25.0
    assert t.cell("mistral_7b/lora", "gsm8k")["runs"] == [run_id]
    assert ("Rows Mistral-7B LoRA use the runs of rows LLaMA-3-8B LoRA: identical in effect at this scale "
            "(same model and config).") in t.notes


def test_a_row_whose_run_differs_in_effect_reads_only_its_own_file(tmp_path, monkeypatch):
    runs = [Run("multitask_llama3", "lora", row="llama3_8b/lora"),
            Run("multitask_llama3", "lora", ["seed=1", "run_tag=_m"], row="mistral_7b/lora")]
    monkeypatch.setattr(experiments, "experiment_list", lambda table: _list(runs))
    _write_run(tmp_path, runs[0], "tiny", {"gsm8k": ({"gsm8k": 25.0}, _rows(40, 10))})
    t = build_table("table2", "tiny", str(tmp_path))
    assert t.cell("mistral_7b/lora", "gsm8k")["ours"] is None
    assert not any(x.startswith("Rows ") for x in t.notes)
    assert np.isfinite(t.cell("llama3_8b/lora", "gsm8k")["ci_low"])


def test_a_column_no_trained_row_moves_from_the_base_gets_a_footnote_with_the_intervals():
    from idlora.reports.tables.render import Table

    t = Table(name="table2", title="t", scale="mini", rows=["m/base", "m/lora", "m/idlora"],
              columns=["params_pct", "gsm8k", "mmlu"], row_labels={"m/base": "Base", "m/lora": "LoRA",
                                                                   "m/idlora": "ID-LoRA"})
    for row, (g, gl, gh), (m, ml, mh) in [("m/base", (10.0, 5.0, 15.0), (40.0, 32.0, 48.0)),
                                          ("m/lora", (30.0, 22.0, 38.0), (44.0, 36.0, 52.0)),
                                          ("m/idlora", (14.0, 8.0, 20.0), (35.0, 27.0, 43.0))]:
        t.add(row, "params_pct", 0.5)
        t.add(row, "gsm8k", g, ci_low=gl, ci_high=gh, n=150)
        t.add(row, "mmlu", m, ci_low=ml, ci_high=mh, n=150)
    notes = from_runs.unmoved_columns(t)
    # GSM8K moved (LoRA's interval [22, 38] is disjoint from the base's [5, 15]); MMLU did not
    assert len(notes) == 1 and notes[0].startswith("MMLU: no trained row's 95% interval is disjoint")
    assert "Base 40.0 [32.0, 48.0], n = 150" in notes[0] and "farthest from it: ID-LoRA 35.0 [27.0, 43.0]" in notes[0]
    assert from_runs.unmoved_columns(t, skip={"m/base"}) == []


def test_a_table_of_runs_made_before_the_fair_protocol_says_so_and_one_made_under_it_does_not(tmp_path, seeded):
    import json

    ids = [_write_run(tmp_path, run, "tiny", {"gsm8k": ({"gsm8k": 25.0}, _rows(40, 10))}) for run in seeded[:3]]
    note = next(x for x in build_table("table2", "tiny", str(tmp_path)).notes if x.startswith("Protocol: "))
    assert note.startswith("Protocol: 3 of this table's runs were made before the fair protocol")
    for run_id in ids:  # a run under the protocol records its dev loss
        path = tmp_path / f"{run_id}.json"
        record = json.loads(path.read_text())
        record["train"] = {**(record.get("train") or {}), "dev_curve": [{"step": 32, "loss": 1.5}], "steps": 32}
        path.write_text(json.dumps(record))
    notes = [x for x in build_table("table2", "tiny", str(tmp_path)).notes if x.startswith("Protocol: ")]
    assert len(notes) == 1 and notes[0].startswith("Protocol: every run was made under the fair protocol")
