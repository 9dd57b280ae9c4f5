"""Figures 3 and 4 from hand-made results files: the data behind each plot, PNGs written, clear errors."""

import json

import pytest

from idlora.errors import ConfigError
from idlora.figures import fig3_data, fig4_data, make_figure
from idlora.tables.from_runs import experiment_list
from test_tables import _write_run

PNG = b"\x89PNG\r\n\x1a\n"


def _bench(path, **metrics):
    path.write_text(json.dumps({"model": "tiny", "quick": True, "metrics": metrics}))
    return path


def test_fig3_overheads_and_paper_claims(tmp_path):
    bench = _bench(tmp_path / "eff.json", infer_time_ratio_idlora=1.25, decode_time_ratio_idlora=1.5,
                   extra_memory_idlora=3 * 2**20, infer_time_ratio_hydralora=2.0, extra_memory_hydralora=2**20,
                   extra_memory_ratio_idlora_vs_hydralora=3.0)
    d = fig3_data(bench)
    assert d["rows"]["idlora"] == {"infer_overhead_pct": 25.0, "decode_overhead_pct": 50.0, "extra_memory_mib": 3.0}
    assert d["rows"]["hydralora"]["infer_overhead_pct"] == 100.0
    assert d["rows"]["moelora"]["infer_overhead_pct"] is None  # not measured: no bar, not a zero
    assert d["paper_time_overhead_pct"] == {"lora_unmerged": None, "dora_unmerged": None, "hydralora": 36.5,
                                            "moelora": 61.6, "idlora": 0.5}
    assert d["paper_memory_claim_pct"] == 45
    out = make_figure("fig3", bench=str(bench), out_dir=str(tmp_path / "figs"))
    assert out.read_bytes().startswith(PNG)


def test_fig3_bad_input(tmp_path):
    with pytest.raises(ConfigError, match="make bench"):
        fig3_data(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not an efficiency benchmark"):
        fig3_data(tmp_path / "bad.json")
    with pytest.raises(ConfigError, match="no inference measurements"):
        make_figure("fig3", bench=str(_bench(tmp_path / "empty.json")), out_dir=str(tmp_path))
    with pytest.raises(ConfigError, match="unknown figure 'fig9'"):
        make_figure("fig9")


def test_fig4_series_from_table7_runs(tmp_path):
    spec = {r.row: r for r in experiment_list("table7")["runs"]}
    _write_run(tmp_path, spec["lora_r8"], "tiny", {"gsm8k": ({"gsm8k": 20.0}, [])})
    _write_run(tmp_path, spec["idlora_r64"], "tiny", {"gsm8k": ({"gsm8k": 30.0}, [])})
    d = fig4_data("tiny", tmp_path)
    # both runs' records say 1,234 of 100,000 parameters trainable
    assert d["series"]["gsm8k"]["lora_ours"] == [(1.23, 20.0, "lora_r8")]
    assert d["series"]["gsm8k"]["idlora_ours"] == [(1.23, 30.0, "idlora_r64")]
    assert d["series"]["mmlu"]["lora_ours"] == []
    # the paper's points: four budgets per method, sorted by parameter share
    assert [p[2] for p in d["series"]["gsm8k"]["idlora_paper"]] == ["idlora_r32", "idlora_r64", "idlora_r128",
                                                                     "idlora_r256"]
    assert d["series"]["gsm8k"]["lora_paper"][0] == (0.13, 57.3, "lora_r4")
    out = make_figure("fig4", scale="tiny", results_dir=str(tmp_path), out_dir=str(tmp_path / "figs"))
    assert out.read_bytes().startswith(PNG)
    with pytest.raises(ConfigError, match="make table7"):
        make_figure("fig4", scale="tiny", results_dir=str(tmp_path / "none"), out_dir=str(tmp_path))
