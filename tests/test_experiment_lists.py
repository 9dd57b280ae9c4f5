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
    ids = set()
    for table, run in _runs():
        overrides = [f"experiment={run['experiment']}", f"method={run['method']}", f"scale={scale}",
                     *run.get("overrides", [])]
        if run.get("run_tag"):
            overrides.append(f"run_tag={run['run_tag']}")
        cfg = compose(overrides)
        ids.add((table, cfg.run_id))
        if scale == "tiny":
            continue  # tiny models are checked by the tiny end-to-end tests
        hf = AutoConfig.from_pretrained(CONFIG_DIR / "hf" / cfg.model.name)
        with torch.device("meta"):
            apply_method(AutoModelForCausalLM.from_config(hf), cfg.method)  # k*r <= d_out, targets exist
    per_table = {}
    for table, run_id in ids:
        per_table.setdefault(table, set()).add(run_id)
    counts = {t: len(v) for t, v in per_table.items()}
    assert counts == {"table1": 36, "table2": 14, "table3": 5, "table7": 9, "table8": 4, "table_init": 5}
