"""The regeneration of the mini tables under the fair protocol (idlora/regeneration.py): each table's arms at their
method's choice on the seeds the claims fix, runs shared across tables and with the pilot, and a regenerated table
read only from the protocol's runs."""

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from idlora import regeneration
from idlora.config import compose
from idlora.errors import ConfigError
from idlora.protocol import grid, load_protocol, runs_dir, stage_of
from idlora.reports.preregistered import load_claims
from idlora.results import new_run_record, update_metrics, write_run_record

CHOICES = {"lora": {"lr": 3.16e-3, "step": 128}, "idlora": {"lr": 1e-3, "step": 96}}


@pytest.fixture(scope="module")
def shipped():
    return load_protocol()


def _tuning(method, lr, best):
    """A complete tuning run's record: dev loss ``best`` at step 96 (higher elsewhere)."""
    losses = {32: best + 0.3, 64: best + 0.2, 96: best, 128: best + 0.01}
    return {"run_id": f"x.{method}_tune_lr{lr:g}_s100", "method": method,
            "config": {"run_tag": f"_tune_lr{lr:g}_s100", "seed": 100},
            "train": {"lr": lr, "dev_curve": [{"step": s, "loss": v, "per_task": {}} for s, v in losses.items()]}}


def _tuned(shipped, methods=("lora", "idlora")):
    """Tuning records choosing 1e-3 at step 96 for every method."""
    return [_tuning(m, lr, 1.0 if lr == 1e-3 else 2.0) for m in methods for lr in grid(shipped, m)]


def test_a_tables_arms_are_its_rows_without_seeds_and_get_the_seeds_their_claims_fix(shipped):
    arms = {a.row: a for a in regeneration.arms("table3")}
    assert list(arms) == ["base", "lora", "idlora_pmrc_rb", "idlora_pmrc_no_rb", "idlora_serial_rb",
                          "idlora_random_rb"]
    assert arms["idlora_pmrc_no_rb"].overrides == ["method.rank_boosting=false", "method.r=${scale.sweep.no_rb_r}",
                                                   "run_tag=_norb"]
    assert arms["lora"].overrides == []  # the _s1/_s2 rows are the same arm
    claims = load_claims()
    assert regeneration.seeds_of(shipped, "table3", "idlora_pmrc_rb", claims) == [1, 2, 3, 4, 5]  # primary
    assert regeneration.seeds_of(shipped, "table3", "idlora_serial_rb", claims) == [1, 2, 3]  # exploratory
    assert regeneration.seeds_of(shipped, "table3", "lora", claims) == [1]  # in no claim
    assert regeneration.methods_of("table3") == ["lora", "idlora"]


def test_every_arm_trains_at_its_methods_choice_seed_major_with_its_own_tag(shipped):
    runs = regeneration.final_runs(shipped, "table3", CHOICES, load_claims())
    assert [r.method for r in runs].count("base") == 1 and len(runs) == 1 + 1 + 5 + 5 + 3 + 5
    seeds = [int(next(o for o in r.overrides if o.startswith("seed="))[5:]) for r in runs[1:]]
    assert seeds == sorted(seeds)  # seed-major: an interrupted batch leaves whole pairs
    norb = next(r for r in runs if r.row == "idlora_pmrc_no_rb" and "seed=2" in r.overrides)
    assert {"method.rank_boosting=false", "++scale.lr.idlora=0.001", "scale.max_steps=96", "train.schedule_steps=128",
            "scale.data_source=real", "run_tag=_final_s2_norb"} <= set(norb.overrides)
    assert stage_of({"config": {"run_tag": "_final_s2_norb"}}) == "final"
    # an arm whose method has no choice is left out
    assert {r.method for r in regeneration.final_runs(shipped, "table3", {"lora": CHOICES["lora"]},
                                                       load_claims())} == {"base", "lora"}


def test_a_run_identical_in_effect_to_an_earlier_tables_or_the_pilots_is_that_run(shipped):
    served = regeneration.served_final_runs(shipped, "table3", _tuned(shipped), load_claims())
    by_row = {}
    for run, serving, table in served:
        by_row.setdefault(run.row, []).append((serving.config().run_id, table))
    # Table 3's LoRA (multitask_llama32, seed 1) is Table 2's LLaMA-3 LoRA, the pilot's file; so is its base
    assert by_row["lora"] == [("multitask_llama3.mini.lora_final_s1", "table2")]
    assert by_row["base"] == [("multitask_llama3.mini.base_protocol", "table2")]
    assert by_row["idlora_random_rb"][0] == ("multitask_llama32.mini.idlora_final_s1_random", "table3")
    assert all(f"results_dir={runs_dir(shipped)}" in s.overrides for _, s, _ in served)
    distinct = regeneration.distinct_runs(shipped, "table3", _tuned(shipped), load_claims())
    assert len(distinct) == len(served) == 20
    with pytest.raises(ConfigError, match="tuning of idlora is incomplete"):
        regeneration.served_final_runs(shipped, "table3", _tuned(shipped, ("lora",)), load_claims())


def test_only_listed_tables_at_mini_are_regenerated_and_an_unknown_name_is_refused(shipped):
    protocol = {**shipped, "regenerated": ["table3"]}
    assert regeneration.is_regenerated(protocol, "table3", "mini")
    assert not regeneration.is_regenerated(protocol, "table3", "paper")
    assert not regeneration.is_regenerated(protocol, "table2", "mini")
    with pytest.raises(ConfigError, match=r"regenerated lists \['table9'\], which are not tables of runs"):
        regeneration.is_regenerated({**shipped, "regenerated": ["table9"]}, "table3", "mini")


def _write(directory, run, seed_scores):
    """A complete results file for ``run`` with GSM8K per-example scores."""
    cfg = compose(run.args())
    path = directory / f"{cfg.run_id}.json"
    write_run_record(path, new_run_record(cfg.run_id, cfg.experiment, "mini", cfg.paper_model, cfg.method.name,
                                          OmegaConf.to_container(cfg, resolve=True), 1_234, 100_000))
    rows = [{"id": i, "score": float(s)} for i, s in enumerate(seed_scores)]
    update_metrics(path, "gsm8k", {"gsm8k": 100 * sum(seed_scores) / len(seed_scores)}, rows, 1.0)


def test_a_regenerated_table_reads_only_the_protocols_runs_and_its_claims_wait_for_every_seed(shipped, tmp_path,
                                                                                           monkeypatch):
    from idlora.reports import prereg
    from idlora.reports.tables import from_runs

    (tmp_path / "runs").mkdir()
    protocol = {**shipped, "regenerated": ["table3"], "pilot": {**shipped["pilot"], "results_dir": str(tmp_path)}}
    records = _tuned(shipped)
    for module in (from_runs, prereg):
        monkeypatch.setattr(module, "load_protocol", lambda: protocol)
    monkeypatch.setattr(from_runs, "load_records", lambda p: records)
    served = regeneration.served_final_runs(protocol, "table3", records, load_claims())
    written = [s for r, s, _ in served if r.row in ("idlora_pmrc_rb", "idlora_random_rb")
               and any(o in s.overrides for o in ("seed=1", "seed=2"))]
    for s in written:
        _write(tmp_path / "runs", s, [1, 0, 1, 1])
    tr = from_runs.load_runs("table3", "mini", results_dir="results/runs")  # the old runs' directory: not read
    assert tr.directory == tmp_path / "runs"
    assert [r["config"]["seed"] for r in tr.records["idlora_pmrc_rb"]] == [1, 2]
    assert tr.records["lora"] == [] and tr.run_ids["lora"] == ["multitask_llama3.mini.lora_final_s1"]
    tests = [t for t in prereg.preregistered({"table3": tr}) if t["claim"] == "t3_pmrc_vs_random"]
    assert tests and all(t["verdict"] == "pending: idlora_pmrc_rb lacks final seed(s) [3, 4, 5]; idlora_random_rb "
                         "lacks final seed(s) [3, 4, 5]; judged once all have run" for t in tests)
    assert all(t["under"] == str(tmp_path / "runs") for t in tests)


def test_make_table_refuses_extra_overrides_for_a_regenerated_table(shipped, monkeypatch):
    from idlora.runs import orchestrate

    monkeypatch.setattr(orchestrate, "load_protocol", lambda: {**shipped, "regenerated": ["table3"]})
    with pytest.raises(ConfigError, match="built from the fair protocol's runs .* drop local_data.x=1"):
        orchestrate.make_table("table3", "mini", overrides=["local_data.x=1"])


def test_an_old_run_is_archived_once_every_table_reading_it_is_regenerated(shipped, tmp_path, monkeypatch):
    """Moved with its per-example file, never deleted; a run a table not regenerated yet still reads stays; the
    regenerated table's files and the claims as they were are copied beside them."""
    from idlora.runs import archive

    monkeypatch.setattr(archive, "readers", lambda scale="mini": {"only3": {"table3"}, "shared": {"table3", "table_rb"},
                                                                   "other": {"table2"}})
    runs, tables = tmp_path / "runs", tmp_path / "tables"
    runs.mkdir()
    tables.mkdir()
    for run_id in ("only3", "shared", "other"):
        (runs / f"{run_id}.json").write_text("{}")
        (runs / f"{run_id}.examples.json").write_text("{}")
    (tables / "table3.md").write_text("old table 3")
    (tmp_path / "CLAIMS.md").write_text("old claims")
    protocol = {**shipped, "regenerated": ["table3"]}
    moved = archive.archive(protocol, tmp_path)
    target = tmp_path / archive.ARCHIVE
    assert sorted(p.name for p in (target / "runs").iterdir()) == ["only3.examples.json", "only3.json"]
    assert sorted(p.name for p in runs.iterdir()) == ["other.examples.json", "other.json", "shared.examples.json",
                                                     "shared.json"]
    assert (target / "tables" / "table3.md").read_text() == "old table 3" and (tables / "table3.md").exists()
    assert (target / "CLAIMS.md").read_text() == "old claims" and "fair protocol" in (target / "README.md").read_text()
    assert len(moved) == 5
    (tmp_path / "CLAIMS.md").write_text("new claims")  # a second archive keeps the first copies
    archive.archive({**protocol, "regenerated": ["table3", "table_rb"]}, tmp_path)
    assert (target / "CLAIMS.md").read_text() == "old claims" and (target / "runs" / "shared.json").exists()


def test_the_pilots_report_reads_only_the_pilots_runs_not_a_tables_ablation_arms(shipped):
    """Table 3's ID-LoRA without Rank Boosting is a final run of ID-LoRA on seed 1 in the same directory: the pilot's
    verdicts must not take it for the pilot's ID-LoRA seed 1."""
    from idlora.protocol import pilot_records

    def record(experiment, tag):
        return {"experiment": experiment, "config": {"run_tag": tag}}

    kept = [record("multitask_llama3", t) for t in ("_final_s1", "_aa_s11", "_tune_lr0.001_s100", "_protocol",
                                                    "_horizon_256_lr0.001_s100")]
    dropped = [record("multitask_llama3", "_final_s1_norb"), record("multitask_llama32", "_final_s1"),
               record("gsm8k_llama3", "_final_s1"), record("multitask_llama3", "_s1")]
    assert pilot_records(shipped, [*kept, *dropped]) == kept


def test_a_table_of_protocol_runs_says_what_the_protocol_fixed():
    from idlora.reports.tables.from_runs import TableRuns, protocol_note
    from idlora.reports.tables.render import Table

    def run(method, seed, lr=1e-3, steps=96):
        return {"method": method, "config": {"seed": seed}, "train": {"lr": lr, "steps": steps}}

    runs = TableRuns(rows=["base", "lora", "idlora"], records={
        "base": [run("base", 100, None, 0)], "lora": [run("lora", 1, 3.16e-3, 128)],
        "idlora": [run("idlora", s) for s in (1, 2, 3, 4, 5)]}, run_ids={}, directory=Path("results/x"))
    table = Table(name="t", title="t", scale="mini", rows=runs.rows, columns=[], row_labels={"idlora": "ID-LoRA"})
    note = protocol_note(table, runs)
    assert "in results/x: each method at the lr and step count its dev loss chose" in note
    assert "(ID-LoRA 0.001 for 96 steps; LoRA 0.00316 for 128 steps)" in note
    assert note.endswith("(seeds a row: base 1; lora 1; ID-LoRA 5).")
