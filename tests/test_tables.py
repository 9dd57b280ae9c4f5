"""The table builder on hand-made results files: missing runs, † marks, rounding, mismatched configs, ± intervals."""

import json

import pytest
from omegaconf import OmegaConf

from idlora.config import compose
from idlora.results import new_run_record, update_metrics, write_run_record
from idlora.reports.tables import build_table
from idlora.experiments import experiment_list


def _write_run(results, spec, scale, metrics, per_example=None, tamper=False, trainable=1_234):
    cfg = compose(spec.at(scale).args())
    config = OmegaConf.to_container(cfg, resolve=True)
    if tamper:
        config["method"]["dropout"] = 0.5
    path = results / f"{cfg.run_id}.json"
    write_run_record(path, new_run_record(cfg.run_id, cfg.experiment, scale, cfg.paper_model, cfg.method.name,
                                          config, trainable, 100_000))
    for bench, (m, ex) in metrics.items():
        update_metrics(path, bench, m, ex, 1.0)
    return cfg.run_id


def test_table2_from_results(tmp_path):
    spec = {(r.row): r for r in experiment_list("table2")["runs"]}
    n = 40
    good = [{"id": i, "score": 1.0 if i < 30 else 0.0} for i in range(n)]
    poor = [{"id": i, "score": 1.0 if i < 10 else 0.0} for i in range(n)]
    third = [{"id": i, "score": 1.0 if i < 10 else 0.0} for i in range(30)]  # 33.33…%
    _write_run(tmp_path, spec["llama3_8b/idlora"], "tiny", {"gsm8k": ({"gsm8k": 75.0}, good),
                                                               "mmlu": ({"mmlu": 100 / 3}, third)})
    _write_run(tmp_path, spec["llama3_8b/lora"], "tiny", {"gsm8k": ({"gsm8k": 25.0}, poor),
                                                             "mmlu": ({"mmlu": 100 / 3}, third)})
    _write_run(tmp_path, spec["llama3_8b/dora"], "tiny", {"gsm8k": ({"gsm8k": 99.0}, good)}, tamper=True)
    t = build_table("table2", "tiny", str(tmp_path))
    cell = t.cell("llama3_8b/idlora", "gsm8k")
    assert cell["ours"] == 75.0 and cell["paper"] == 59.6 and cell["significant"] is True
    assert t.cell("llama3_8b/idlora", "mmlu")["significant"] is False  # identical scores
    assert t.cell("llama3_8b/idlora", "mmlu")["ours"] == 33.3  # rounded to one decimal
    assert t.cell("llama3_8b/lora", "params_pct")["ours"] == 1.23
    assert t.cell("llama3_8b/dora", "gsm8k")["ours"] is None  # written by another config: not used
    assert any("different config" in n for n in t.notes)
    assert t.cell("mistral_7b/fft", "gsm8k")["ours"] is None  # no run
    md = t.to_markdown()
    assert f"75.0† ±{(cell['ci_high'] - cell['ci_low']) / 2:.1f} / 59.6" in md
    assert "— / 52.2" in md and "no results file" in md
    assert "not comparable to the paper" in md
    paths = t.write(tmp_path / "tables")
    doc = json.loads(paths[2].read_text())
    assert doc["table"] == "table2" and doc["scale"] == "tiny"
    assert {"row", "column", "ours", "paper", "significant", "runs"} <= set(doc["cells"][0])
    assert "\\dagger" in paths[1].read_text() and "\\scriptsize$\\pm$" in paths[1].read_text()
    assert cell["seeds"] == 1 and cell["n"] == n and cell["ci_low"] < 75.0 < cell["ci_high"]
    assert "ci_low" not in t.cell("llama3_8b/lora", "params_pct")  # no per-example scores: no interval


def test_unknown_table_is_a_clear_error():
    from idlora.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown table 'table9'"):
        build_table("table9")


def test_table_beyond_the_paper_has_its_own_title_and_no_paper_numbers(tmp_path):
    spec = {r.row: r for r in experiment_list("table_init")["runs"]}
    _write_run(tmp_path, spec["idlora_svd"], "tiny", {"gsm8k": ({"gsm8k": 12.5}, [])})
    t = build_table("table_init", "tiny", str(tmp_path))
    assert t.rows == ["base", "idlora_pmrc", "idlora_serial", "idlora_random", "idlora_svd", "idlora_gaussian"]
    assert t.cell("idlora_svd", "gsm8k")["ours"] == 12.5 and t.cell("idlora_svd", "gsm8k")["paper"] is None
    assert t.cell("idlora_pmrc", "gsm8k")["ours"] is None
    md = t.to_markdown()
    assert "frozen bases" in md and md.startswith("# Beyond the paper (table_init): ")
    assert "Ours only: the paper has no numbers here." in md and "ours / paper" not in md


def test_tables_of_the_rb_factor_the_router_and_the_lr_have_a_base_row_and_their_own_titles(tmp_path):
    lr = build_table("table_lr", "tiny", str(tmp_path))
    assert lr.rows == ["base", "lora", "idlora_lr1e-3", "idlora_lr3e-4", "idlora_lr1e-4"]
    assert lr.to_markdown().startswith("# Beyond the paper (table_lr): ID-LoRA's learning rate")
    assert "| ID-LoRA lr 3e-4 |" in lr.to_markdown() and "| Base (untrained) |" in lr.to_markdown()  # labels:
    rb = build_table("table_rb", "tiny", str(tmp_path))
    assert rb.rows == ["base", "idlora_rb_m1", "idlora_rb_m2", "idlora_rb_m4"]
    router = build_table("table_router", "tiny", str(tmp_path))
    assert router.rows == ["base", "idlora_router_linear", "idlora_router_inner", "idlora_router_text",
                           "idlora_router_uniform"]
    assert router.to_markdown().startswith("# Beyond the paper (table_router): The router")
    assert "Rank Boosting factor m" in rb.to_markdown()


def test_a_title_naming_the_papers_rank_gets_the_runs_rank():
    from idlora.reports.tables.from_runs import TableRuns, _ranks_used

    rec = {"config": {"method": {"r": 24}}}
    runs = TableRuns(rows=["base", "k4"], records={"base": [{"config": {"method": {"name": "base"}}}], "k4": [rec]},
                     run_ids={})
    assert _ranks_used("Cluster count k, r=128", runs) == [
        "Rank: the title's r is the paper's; the runs of this table trained with r = 24 (method.r in their results "
        "files)."]
    assert _ranks_used("Multi-task", runs) == []
