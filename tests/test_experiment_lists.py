"""Every run of every table's experiment list composes into a valid config, and its method fits its model."""

from pathlib import Path

import pytest
import torch
import yaml
from transformers import AutoConfig, AutoModelForCausalLM

from idlora.config import CONFIG_DIR, compose
from idlora.methods import apply_method

LISTS = sorted((Path(__file__).parents[1] / "experiments").glob("table*.yaml"))


def _runs():
    for path in LISTS:
        for run in yaml.safe_load(path.read_text())["runs"]:
            yield path.stem, run


@pytest.mark.parametrize("scale", ["paper", "mini", "tiny"])
def test_every_listed_run_composes_and_fits_its_model(scale):
    ids, fitted = set(), set()
    for table, run in _runs():
        overrides = [f"experiment={run['experiment']}", f"method={run['method']}", f"scale={scale}",
                     *run.get("overrides", [])]
        if run.get("run_tag"):
            overrides.append(f"run_tag={run['run_tag']}")
        cfg = compose(overrides)
        ids.add((table, cfg.run_id))
        if scale == "tiny":
            continue  # tiny models are checked by the tiny end-to-end tests
        shape_key = (cfg.model.name, repr({k: v for k, v in cfg.method.items() if k != "seed"}))
        if shape_key in fitted:  # seeds and repeated rows build the same shapes
            continue
        fitted.add(shape_key)
        hf = AutoConfig.from_pretrained(CONFIG_DIR / "hf" / cfg.model.name)
        with torch.device("meta"):
            apply_method(AutoModelForCausalLM.from_config(hf), cfg.method)  # k*r <= d_out, targets exist
    per_table = {}
    for table, run_id in ids:
        per_table.setdefault(table, set()).add(run_id)
    counts = {t: len(v) for t, v in per_table.items()}
    assert counts == {"table1": 90, "table2": 32, "table3": 16, "table7": 26, "table8": 5, "table_init": 6,
                      "table_rb": 10, "table_router": 13, "table_lr": 13}


def test_every_row_of_a_list_outside_tables_1_2_has_a_label():
    for path in LISTS:
        doc = yaml.safe_load(path.read_text())
        if path.stem in ("table1", "table2"):  # labelled "<model> <method>"
            continue
        rows = {run["row"] for run in doc["runs"]} - {"base"}
        assert rows == set(doc.get("labels", {})), (path.stem, rows ^ set(doc.get("labels", {})))


def test_rows_that_compare_idlora_with_lora_have_three_seeds():
    # the claims pair ID-LoRA with LoRA in these lists: one training run a side would measure that run, not the method
    seeds: dict = {}
    for table, run in _runs():
        if table in ("table1", "table2", "table3", "table7", "table_lr") and run["method"] in ("lora", "idlora"):
            seed = next((int(o.split("=")[1]) for o in run.get("overrides", []) if o.startswith("seed=")),
                        compose([f"experiment={run['experiment']}", f"method={run['method']}", "scale=mini"]).seed)
            seeds.setdefault((table, run["row"]), set()).add(seed)
    assert seeds and {key: s for key, s in seeds.items() if len(s) < 3} == {}
    assert seeds[("table7", "lora_r4")] == seeds[("table7", "idlora_r256")] == {42, 1, 2}
