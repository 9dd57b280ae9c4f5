"""Figures 3 and 4 from hand-made results files: the data behind each plot, PNGs written, clear errors."""

import json

import pytest

from idlora.errors import ConfigError
from idlora.reports.figures import fig3_data, fig4_data, make_figure
from idlora.experiments import experiment_list
from test_tables import _write_run

PNG = b"\x89PNG\r\n\x1a\n"


def _bench(path, intervals=None, **metrics):
    doc = {"model": "tiny", "quick": True, "metrics": metrics}
    if intervals is not None:
        doc["intervals"] = intervals
    path.write_text(json.dumps(doc))
    return path


def test_fig3_overheads_and_paper_claims(tmp_path):
    bench = _bench(tmp_path / "eff.json", infer_time_ratio_idlora=1.25, decode_time_ratio_idlora=1.5,
                   extra_memory_idlora=3 * 2**20, infer_time_ratio_hydralora=2.0, extra_memory_hydralora=2**20,
                   extra_memory_ratio_idlora_vs_hydralora=3.0,
                   paper_adapter_bytes_ratio_llama3_8b_idlora_vs_hydralora=0.549)
    d = fig3_data(bench)
    assert d["paper_shape_ratios"] == {"llama3_8b_idlora_vs_hydralora": 0.549}
    assert d["rows"]["idlora"] == {"infer_overhead_pct": 25.0, "decode_overhead_pct": 50.0, "extra_memory_mib": 3.0,
                                   "compiled_infer_overhead_pct": None, "infer_overhead_ci_pct": None,
                                   "decode_overhead_ci_pct": None, "compiled_infer_overhead_ci_pct": None}
    assert d["rows"]["hydralora"]["infer_overhead_pct"] == 100.0
    assert d["rows"]["moelora"]["infer_overhead_pct"] is None  # not measured: no bar, not a zero
    assert d["paper_time_overhead_pct"] == {"lora_unmerged": None, "dora_unmerged": None, "hydralora": 36.5,
                                            "moelora": 61.6, "idlora": 0.5}
    assert d["paper_memory_claim_pct"] == 45
    out = make_figure("fig3", bench=str(bench), out_dir=str(tmp_path / "figs"))
    assert out.read_bytes().startswith(PNG)


def test_fig3_ours_official_compiled_and_intervals(tmp_path):
    """Issue 19's keys (optional: the committed file predates them): the official implementations' rows, compiled
    ratios, 95% intervals; the bars of a method are ours, compiled, official, paper, DoRA on panels of its own."""
    from idlora.reports.figures import _fig3_bars, _fig3_titles

    metrics = {f"{kind}_time_ratio_{m}": ratio for m, ratio in
               (("idlora", 1.02), ("hydralora", 1.10), ("hydralora_official", 1.30), ("dora_unmerged", 6.0))
               for kind in ("infer", "decode")}
    metrics.update(compiled_infer_time_ratio_idlora=1.01, extra_memory_hydralora_official=2**21)
    bench = _bench(tmp_path / "eff.json", intervals={"infer_time_ratio_hydralora_official": [1.25, 1.40],
                                                     "compiled_infer_time_ratio_idlora": [1.0, 1.03]}, **metrics)
    d = fig3_data(bench)
    official = d["rows"]["hydralora_official"]
    assert official["infer_overhead_pct"] == pytest.approx(30.0) and official["extra_memory_mib"] == 2.0
    assert official["infer_overhead_ci_pct"] == pytest.approx([25.0, 40.0])
    assert d["rows"]["moelora_official"]["infer_overhead_pct"] is None
    assert d["rows"]["idlora"]["compiled_infer_overhead_ci_pct"] == pytest.approx([0.0, 3.0])
    assert [b[0] for b in _fig3_bars(d, "hydralora", "infer")] == ["ours", "compiled", "official", "paper"]
    assert [b[0] for b in _fig3_bars(d, "hydralora", "decode")] == ["ours", "official", "paper"]
    assert [b[0] for b in _fig3_bars(d, "idlora", "decode")] == ["ours", "paper"]
    assert [b[0] for b in _fig3_bars(d, "dora_unmerged", "decode")] == ["ours"]  # the paper has no DoRA claim
    assert _fig3_bars(d, "idlora", "infer")[1][1:] == (pytest.approx(1.0), pytest.approx([0.0, 3.0]))
    assert d["decode_pairs"] == {}  # no direct pair measured: the title says nothing of one
    assert "paired" not in _fig3_titles(d)["rows"]["decode"]
    pair = "decode_time_ratio_idlora_vs_lora_unmerged"
    paired = fig3_data(_bench(tmp_path / "pair.json", intervals={pair: [0.95, 1.06]}, **{pair: 0.971}, **metrics))
    assert paired["decode_pairs"] == {"eager": (0.971, [0.95, 1.06], 0)}  # a file without samples: n unknown
    assert "unmerged LoRA, paired: 0.971 [0.950, 1.060]" in _fig3_titles(paired)["rows"]["decode"]
    with_n = json.loads((tmp_path / "pair.json").read_text())
    (tmp_path / "pair.json").write_text(json.dumps({**with_n, "samples": {pair: [0.97, 0.971, 0.972]}}))
    assert "paired: 0.971 [0.950, 1.060] (n=3)" in _fig3_titles(fig3_data(tmp_path / "pair.json"))["rows"]["decode"]
    out = make_figure("fig3", bench=str(bench), out_dir=str(tmp_path / "figs"))
    assert out.read_bytes().startswith(PNG)


def test_fig3_draws_the_committed_benchmark_file(tmp_path):
    """The committed efficiency.json (written before issue 19: no official rows, no intervals, no compiled ratios)."""
    from pathlib import Path

    committed = Path(__file__).parents[1] / "results" / "bench" / "efficiency.json"
    d = fig3_data(committed)
    assert d["rows"]["idlora"]["infer_overhead_pct"] is not None
    out = make_figure("fig3", bench=str(committed), out_dir=str(tmp_path))
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
    from idlora.experiments import served_runs

    # each row's results file is its serving run's (perhaps an earlier table's run identical in effect)
    spec = {r.row: serving for r, serving, _ in served_runs("table7", "tiny")}
    _write_run(tmp_path, spec["lora_r8"], "tiny", {"gsm8k": ({"gsm8k": 20.0}, [])})
    _write_run(tmp_path, spec["idlora_r64"], "tiny", {"gsm8k": ({"gsm8k": 30.0}, [])})
    base = [{"id": i, "score": 1.0 if i < 4 else 0.0} for i in range(40)]  # 10% of 40 examples
    _write_run(tmp_path, spec["base"], "tiny", {"gsm8k": ({"gsm8k": 10.0}, base)})
    d = fig4_data("tiny", tmp_path)
    score, lo, hi = d["base"]["gsm8k"]  # the untrained line and its band
    # the bootstrap interval of 4/40 lies within the exact binomial range of a resampled count (0..9 of 40)
    assert score == 10.0 and 0.0 <= lo < 10.0 < hi <= 22.5 and set(d["base"]) == {"gsm8k"}
    # both runs' records say 1,234 of 100,000 parameters trainable
    # at tiny some sweep ranks coincide: every row that run serves shows its point
    same = {row: [r for r in spec if spec[r] is spec[row]] for row in ("lora_r8", "idlora_r64")}
    assert d["series"]["gsm8k"]["lora_ours"] == sorted((1.23, 20.0, r) for r in same["lora_r8"] if r.startswith("lora"))
    assert d["series"]["gsm8k"]["idlora_ours"] == sorted((1.23, 30.0, r) for r in same["idlora_r64"])
    assert d["series"]["mmlu"]["lora_ours"] == []
    # the paper's points: four budgets per method, sorted by parameter share
    assert [p[2] for p in d["series"]["gsm8k"]["idlora_paper"]] == ["idlora_r32", "idlora_r64", "idlora_r128",
                                                                     "idlora_r256"]
    assert d["series"]["gsm8k"]["lora_paper"][0] == (0.13, 57.3, "lora_r4")
    out = make_figure("fig4", scale="tiny", results_dir=str(tmp_path), out_dir=str(tmp_path / "figs"))
    assert out.read_bytes().startswith(PNG)
    with pytest.raises(ConfigError, match="make table7"):
        make_figure("fig4", scale="tiny", results_dir=str(tmp_path / "none"), out_dir=str(tmp_path))


def test_effective_rank_views_against_the_algebra():
    """LoRA's ΔW has rank r; ID-LoRA's output space is bounded by r (blockdiag(B, B)), its input space reaches
    k·r (the union of the rows S_i of W); computed on layers with random weights where these bounds are attained."""
    import torch
    from peft import LoraConfig
    from peft.tuners.lora import Linear as LoraLinear
    from torch import nn

    from idlora import IDLoRAConfig
    from idlora.analysis.effective_rank import numerical_rank, spectra
    from idlora.tuners.idlora.layer import Linear

    torch.manual_seed(0)
    base = nn.Linear(40, 32, bias=False)
    lora = LoraLinear(nn.Linear(40, 32, bias=False), "default", LoraConfig(r=2, lora_alpha=4), r=2, lora_alpha=4)
    nn.init.normal_(lora.lora_B["default"].weight)
    index = torch.randperm(32)[:16].reshape(4, 4)
    idl = Linear(base, "default", IDLoRAConfig(r=4, k=4, alpha=8, target_modules=["x"]), frozen=index, module_name="x")
    nn.init.normal_(idl.idlora_B["default"].weight)
    d = spectra(lora, idl)
    assert d["lora"]["rank"] == 2
    assert d["idlora_outputs"]["rank"] == 4 and d["idlora_outputs"]["shape"] == [32, 160]
    assert d["idlora_inputs"]["rank"] == 16 and d["idlora_inputs"]["shape"] == [128, 40]
    assert d["idlora_uniform"]["rank"] == 4
    # the literal ΔW_1 = (alpha/r) [B W[S_1]^1 ; B W[S_1]^2], rank 2·rank(B) = r
    from idlora.analysis.effective_rank import idlora_deltas

    B, A = idl.idlora_B["default"].weight.double(), base.weight.double()[index[0]]
    lit = 2.0 * torch.cat([B @ A[:2], B @ A[2:]])
    torch.testing.assert_close(idlora_deltas(idl)[0], lit)
    assert numerical_rank(torch.linalg.svdvals(lit).tolist()) == 4
