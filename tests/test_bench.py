"""The efficiency benchmark's quick=true mode writes every key Figure 3 and the issue's targets read (no timings
are asserted: they are ratios measured on a shared machine, reported by `make bench`)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).parents[1]
KEYS = ["pmrc_speedup", "pmrc_objective_ratio", "pmrc_seconds_llama3_8b_estimate",
        "pmrc_seconds_llama3_8b_estimate_reference", "pmrc_seconds_llama3_8b_estimate_torch",
        "extra_memory_ratio_idlora_vs_hydralora", "extra_memory_ratio_idlora_vs_moelora",
        "train_step_ratio_idlora_vs_lora", "train_step_ratio_idlora_vs_lora_input",
        "train_step_ratio_idlora_vs_lora_rows", "paper_adapter_bytes_ratio_llama3_8b_idlora_vs_hydralora",
        "paper_adapter_bytes_ratio_llama3_8b_idlora_vs_moelora"]
TIMED = []
for m in ("idlora", "hydralora", "moelora", "lora_unmerged", "dora_unmerged", "hydralora_official",
          "moelora_official"):
    for prefix in ("", "paper_shapes_"):  # the mini panel and the paper-shape panel
        KEYS += [f"{prefix}infer_time_ratio_{m}", f"{prefix}decode_time_ratio_{m}", f"{prefix}extra_memory_{m}",
                 f"{prefix}adapter_bytes_{m}"]
        TIMED += [f"{prefix}infer_time_ratio_{m}", f"{prefix}decode_time_ratio_{m}"]
KEYS += ["pmrc_objective_ratio_max", "paper_shapes_extra_memory_ratio_idlora_vs_hydralora"]
TIMED += ["train_step_ratio_idlora_vs_lora_input", "train_step_ratio_idlora_vs_lora_rows",
          "decode_time_ratio_idlora_vs_lora_unmerged"]
KEYS += ["decode_time_ratio_idlora_vs_lora_unmerged"]


def test_quick_benchmark_writes_every_key(tmp_path):
    out = tmp_path / "efficiency.json"
    res = subprocess.run([sys.executable, str(REPO / "scripts/bench_efficiency.py"), "quick=true", f"out={out}"],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    report = json.loads(out.read_text())
    metrics = report["metrics"]
    missing = [k for k in KEYS if k not in metrics]
    assert not missing
    assert all(isinstance(metrics[k], float) and metrics[k] > 0 for k in KEYS)
    # every timed ratio has its 95% interval; the official rows ran with method.impl=official
    assert sorted(report["intervals"]) == sorted(TIMED)
    assert all(lo <= metrics[k] <= hi for k, (lo, hi) in report["intervals"].items())
    assert report["settings"]["methods"]["moelora_official"] == {**report["settings"]["methods"]["moelora"],
                                                                 "impl": "official"}
    assert set(report["parts"]) == {"shapes", "infer", "decode", "train", "pmrc"}  # compile: only when asked for
    shapes = report["settings"]["paper_shapes"]
    assert shapes["model"] == "llama3_8b" and shapes["layers"] == 1 and shapes["trials"] == 2
    assert shapes["trials_of"] == {}  # quick: every method at the same 2 trials


def test_inference_ratios_give_a_method_its_own_number_of_trials(monkeypatch):
    """``trials_of`` (the paper-shape panel's fewer DoRA trials) sets that method's trials and exempts it from the
    precision rule; the others keep ``trials`` and the rule."""
    import torch

    from idlora.bench import efficiency
    from idlora.models.tiny import tiny_llama

    calls = []
    real = efficiency.trial_ratios

    def counting(fn, base, trials, warmup=1, precision=None, max_trials=None):
        calls.append((trials, precision, max_trials))
        return real(fn, base, trials, warmup)

    monkeypatch.setattr(efficiency, "trial_ratios", counting)
    ids = torch.randint(3, 200, (1, 8), generator=torch.Generator().manual_seed(0))
    methods = {"idlora": {"name": "idlora", "r": 4, "alpha": 8, "k": 4, "selection": "serial"},
               "lora_unmerged": {"name": "lora", "r": 2, "alpha": 4}}
    intervals = efficiency.Found()
    efficiency.inference_ratios(tiny_llama(), methods, {"input_ids": ids}, ids[:, :4], 2, 2, intervals,
                                trials_of={"lora_unmerged": 3}, precision=0.03, max_trials=9)
    # prompt and decode of each method, in order
    assert calls == [(2, 0.03, 9), (2, 0.03, 9), (3, None, None), (3, None, None)]
    assert len(intervals) == 4
    assert {k: len(v) for k, v in intervals.samples.items()} == {
        "infer_time_ratio_idlora": 2, "decode_time_ratio_idlora": 2,
        "infer_time_ratio_lora_unmerged": 3, "decode_time_ratio_lora_unmerged": 3}


def test_trial_ratios_go_on_until_the_interval_is_as_narrow_as_asked(monkeypatch):
    """The precision rule: ``trials`` trials, then steps of PRECISION_STEP until the 95% interval of the median is
    within ``precision`` of it either side, never beyond ``max_trials``; no precision: exactly ``trials``."""
    from idlora.bench import trials
    from idlora.stats import median_ci

    clock = [0.0]
    monkeypatch.setattr(trials.time, "perf_counter", lambda: clock[0])

    def make(seconds):
        n = [0]

        def f():
            clock[0] += seconds[n[0] % len(seconds)]
            n[0] += 1
        return f

    base = make([1.0])
    steady = trials.trial_ratios(make([1.25]), base, 10, warmup=0, precision=0.03, max_trials=50)
    assert steady == [1.25] * 10  # already within 0.03: no more trials
    noisy = trials.trial_ratios(make([0.5, 1.5]), base, 10, warmup=0, precision=0.03, max_trials=32)
    assert len(noisy) == 32  # a two-point spread never narrows: stops at the cap, not at a multiple of the step
    assert trials.half_width(median_ci(noisy)) > 0.03
    assert len(trials.trial_ratios(make([0.5, 1.5]), base, 10, warmup=0)) == 10
    # a spread that narrows as trials accumulate: 1.0 with a quarter of outliers stops once the median's interval
    # is tight
    rare = trials.trial_ratios(make([2.0, 2.0] + [1.0] * 6), base, 5, warmup=0, precision=0.001, max_trials=100)
    assert 5 < len(rare) < 100 and (len(rare) - 5) % trials.PRECISION_STEP == 0
    assert trials.half_width(median_ci(rare)) <= 0.001


def test_compiled_ratios_time_every_method_against_the_compiled_merged_model():
    """The compile part's path (backend eager: the trace, not the kernels, on a CPU in seconds)."""
    import torch

    from idlora.bench.efficiency import compiled_ratios
    from idlora.models.tiny import tiny_llama

    ids = torch.randint(3, 200, (1, 8), generator=torch.Generator().manual_seed(0))
    methods = {"idlora": {"name": "idlora", "r": 4, "alpha": 8, "k": 4, "selection": "serial"},
               "moelora_official": {"name": "moelora", "r": 2, "n_experts": 2, "impl": "official"}}
    intervals = {}
    base = tiny_llama()
    out = compiled_ratios(base, methods, {"input_ids": ids}, trials=2, backend="eager", intervals=intervals)
    assert sorted(out) == sorted(intervals) == ["compiled_infer_time_ratio_idlora",
                                                "compiled_infer_time_ratio_moelora_official"]
    assert all(v > 0 for v in out.values())
    assert not hasattr(base, "peft_config")  # each adapter unloaded: the base is the plain model again


@pytest.mark.parametrize("backend", [None, "eager"])
def test_decode_pair_ratios_compare_two_adapters_on_copies_of_the_base(backend):
    """ID-LoRA's decoding against unmerged LoRA's, each on its own copy of the base (eager, and compiled over a static
    KV cache: backend eager checks the path in seconds); the generated tokens are those of the eager model."""
    import torch

    from idlora.bench.efficiency import _decoder, _randomize_adapter, decode_pair_ratios
    from idlora.methods import apply_method
    from idlora.models.tiny import tiny_llama

    prompt = torch.randint(3, 200, (1, 6), generator=torch.Generator().manual_seed(0))
    idlora = {"name": "idlora", "r": 4, "alpha": 8, "k": 4, "selection": "serial"}
    lora = {"name": "lora", "r": 2, "alpha": 4}
    base = tiny_llama()
    ratios = decode_pair_ratios(base, idlora, lora, prompt, 3, trials=2, compile_backend=backend)
    assert len(ratios) == 2 and all(r > 0 for r in ratios)
    assert not hasattr(base, "peft_config")  # the base itself is never adapted
    if backend:
        model = apply_method(tiny_llama(), idlora)
        _randomize_adapter(model)
        eager = _decoder(model.eval(), prompt, 3)()
        torch.testing.assert_close(_decoder(model, prompt, 3, backend)(), eager)


def test_bench_options_are_checked():
    for args, match in ((["quick=true", "parts=infer", "compile_backend=eager"], "is the compile parts' option"),
                        (["quick=true", "parts=compile", "compile_backend=nope"], "not a torch.compile backend"),
                        (["quick=true", "parts=decode", "pair_trials=0"], "pair_trials='0' is not valid")):
        res = subprocess.run([sys.executable, str(REPO / "scripts/bench_efficiency.py"), *args, "out=/dev/null"],
                             cwd=REPO, capture_output=True, text=True, timeout=120)
        assert res.returncode != 0 and match in res.stderr + res.stdout, res.stderr[-1000:]


def test_paper_adapter_bytes_are_table6_counts_in_float32():
    """Exact, not timed: ID-LoRA's bytes at the paper's setting are Table 6's r=128 count (+ router: counted there)
    in float32 plus its int64 row indices (k*r per module)."""
    from idlora.bench.efficiency import paper_adapter_bytes

    b = paper_adapter_bytes("llama3_8b")
    index_bytes = 224 * 4 * 128 * 8  # 224 targeted matrices, k=4 clusters of r=128 rows, int64
    assert b["paper_adapter_bytes_llama3_8b_idlora"] == 49_020_928 * 4 + index_bytes
    assert b["paper_adapter_bytes_llama3_8b_hydralora"] == 89_718_784 * 4  # Table 6, r=16
    assert 0.54 < b["paper_adapter_bytes_ratio_llama3_8b_idlora_vs_hydralora"] < 0.56


def test_peak_live_bytes_counts_intermediate_tensors():
    import torch

    from idlora.bench.efficiency import peak_live_bytes

    a = torch.randn(100, 100)
    assert peak_live_bytes(lambda: (a @ a) @ a) == 2 * 100 * 100 * 4  # two live (100, 100) float32 results


def test_peak_live_bytes_leaves_out_weights_and_views():
    """A linear layer's forward allocates its output only: the weight (touched through a transposed view) and the
    input are not allocations, nor is an in-place update. (Counting them made every adapter's extra memory twice
    its parameter bytes in the 2026-11-24 efficiency.json.)"""
    import torch

    from idlora.bench.efficiency import peak_live_bytes

    lin = torch.nn.Linear(1000, 500, bias=False)
    x = torch.randn(10, 1000)
    assert peak_live_bytes(lambda: lin(x)) == 10 * 500 * 4
    assert peak_live_bytes(lambda: lin(x).add_(1.0)) == 10 * 500 * 4
    assert peak_live_bytes(lambda: lin.weight.T.contiguous()) == 500 * 1000 * 4  # a real copy still counts


def test_projection_shapes_from_the_model_configs():
    from idlora.bench.pmrc_cost import projection_shapes

    s = projection_shapes("llama3_8b")  # hidden 4096, 32 heads, 8 KV heads, FFN 14336, 32 layers
    assert s == {(4096, 4096): 64, (1024, 4096): 64, (14336, 4096): 64, (4096, 14336): 32}
    assert sum(s.values()) == 224
    assert projection_shapes("llama32_3b")[(1024, 3072)] == 2 * 28


def test_pmrc_cost_quick_writes_its_files(tmp_path):
    from idlora.bench.pmrc_cost import run
    from idlora.reports.tables.pmrc_cost import write_table

    doc = run(tmp_path / "cost.json", models=("llama32_3b",), quick=True)
    write_table(doc, tmp_path / "tables", source=str(tmp_path / "cost.json"))  # as scripts/pmrc_cost.py does
    c = doc["models"]["llama32_3b"]
    assert c["matrices"] == 7 * 28 and c["seconds_reference"] > 0 and c["seconds_torch"] > 0
    assert c["peak_mib_reference"] >= 0
    from idlora.bench.pmrc_cost import measure, measure_all, paper_restarts

    assert c["torch_timing"] == "every matrix, measured" and c["restarts_torch"] == paper_restarts() == 1
    assert len(c["objective_ratio_per_shape"]) == 4 and 0.95 < c["objective_ratio_max"] < 1.05
    # the every-matrix run's first matrix of a shape is the one measured against the reference
    full = measure_all("llama32_3b", 4, 1, {(48, 16): 3})
    assert full["objective_first"]["48x16"] == measure(48, 16, 4, "torch", restarts=1)["objective"]
    md = (tmp_path / "tables" / "table_pmrc_cost.md").read_text()
    assert md.count("llama32_3b") == 1 and md.startswith("# Beyond the paper (table_pmrc_cost)")
    assert "Scale: `tiny shapes (quick)`" in md and "ours / paper" not in md
    # the table alone, from the results file (scripts/pmrc_cost.py table=true): the same text
    import pytest

    from idlora.errors import ConfigError
    from idlora.reports.tables.pmrc_cost import rebuild_table

    rebuild_table(tmp_path / "cost.json", tmp_path / "again")
    assert (tmp_path / "again" / "table_pmrc_cost.md").read_text() == md
    (tmp_path / "bad.json").write_text('{"k": 4}')
    with pytest.raises(ConfigError, match="not a pmrc_cost results file"):
        rebuild_table(tmp_path / "bad.json", tmp_path / "never")
    with pytest.raises(ConfigError, match="run `make pmrc_cost` first"):
        rebuild_table(tmp_path / "missing.json", tmp_path / "never")
    assert not (tmp_path / "never").exists()


def test_a_run_of_some_parts_keeps_the_other_parts_of_the_file():
    from idlora.bench.efficiency import merge_parts

    old = {"model": "m", "quick": False, "provenance": {"date": "d0"},
           "metrics": {"infer_time_ratio_idlora": 1.1, "extra_memory_idlora": 5.0, "train_step_ratio_x": 0.9,
                       "pmrc_speedup": 10.0, "pmrc_old_key": 1.0}}
    new = {"model": "m", "quick": False, "provenance": {"date": "d1"}, "parts": {"pmrc": {"date": "d1"}},
           "metrics": {"pmrc_speedup": 30.0}}
    merged = merge_parts(old, new)
    assert merged["metrics"] == {"infer_time_ratio_idlora": 1.1, "extra_memory_idlora": 5.0,
                                 "train_step_ratio_x": 0.9, "pmrc_speedup": 30.0}  # a part's stale keys go
    assert merged["parts"] == {"infer": {"date": "d0"}, "train": {"date": "d0"}, "pmrc": {"date": "d1"}}
    again = merge_parts(merged, {**new, "parts": {"train": {"date": "d2"}}, "metrics": {"train_step_ratio_x": 1.0}})
    assert again["parts"]["train"] == {"date": "d2"} and again["parts"]["pmrc"] == {"date": "d1"}
    assert again["metrics"]["pmrc_speedup"] == 30.0 and again["metrics"]["train_step_ratio_x"] == 1.0
    for other in ({**old, "model": "other"}, {**old, "quick": True}, None):  # another model or mode: replaced
        assert merge_parts(other, new)["metrics"] == {"pmrc_speedup": 30.0}


def test_a_replaced_run_goes_to_history_and_between_runs_pools_the_runs_of_a_part():
    from idlora.bench.efficiency import merge_parts
    from idlora.bench_format import between_runs

    key = "decode_time_ratio_idlora_vs_lora_unmerged"

    def run(date, median, samples):
        return {"model": "m", "quick": False, "parts": {"decode": {"date": date}},
                "metrics": {key: median}, "intervals": {key: [median - 0.01, median + 0.01]},
                "samples": {key: samples}}

    first = merge_parts(None, run("2026-12-01", 1.0, [1.0] * 3))
    assert "history" not in first and between_runs(first, key, since="") is None  # one run: no spread
    second = merge_parts(first, run("2026-12-02", 2.0, [2.0] * 4))
    assert second["history"] == [{"part": "decode", "date": "2026-12-01",
                                  "metrics": {key: {"median": 1.0, "interval": [0.99, 1.01], "n": 3}}}]
    third = merge_parts(second, run("2026-12-03", 3.0, [3.0] * 5))
    assert [h["date"] for h in third["history"]] == ["2026-12-01", "2026-12-02"]
    # a run of another part leaves the history of this one as it was
    other = {"model": "m", "quick": False, "parts": {"pmrc": {"date": "2026-12-04"}}, "metrics": {"pmrc_speedup": 2.0}}
    assert merge_parts(third, other)["history"] == third["history"]
    assert between_runs(third, key) is None  # by default only runs of the current code (CODE_SINCE) are pooled
    spread = between_runs(third, key, since="")
    # medians 1, 2, 3: mean 2, SD 1, SE 1/sqrt(3); t(0.975, 2 df) = 4.302653 (tables)
    half = 4.302653 / 3 ** 0.5
    assert spread["runs"] == 3 and spread["medians"] == [1.0, 2.0, 3.0]
    assert spread["mean"] == 2.0 and abs(spread["low"] - (2 - half)) < 1e-5 and abs(spread["high"] - (2 + half)) < 1e-5
    assert between_runs(third, key, since="2026-12-02")["medians"] == [2.0, 3.0]  # runs of the same code only
    assert between_runs(third, key, since="2026-12-03") is None


def test_intervals_and_the_compile_part_follow_their_parts():
    from idlora.bench.efficiency import merge_parts
    from idlora.bench_format import metric_part

    assert metric_part("compiled_infer_time_ratio_idlora") == "compile"
    assert metric_part("compiled_decode_time_ratio_idlora_vs_lora_unmerged") == "compile_decode"
    assert metric_part("decode_time_ratio_idlora_vs_lora_unmerged") == "decode"
    assert metric_part("decode_time_ratio_idlora") == "infer"
    assert metric_part("infer_time_ratio_moelora_official") == "infer"
    assert metric_part("paper_shapes_infer_time_ratio_idlora") == "shapes"
    assert metric_part("paper_adapter_bytes_llama3_8b_idlora") == "infer"
    old = {"model": "m", "quick": False, "settings": {"compile_backend": "inductor"},
           "parts": {"infer": {"date": "d0"}, "compile": {"date": "d0"}},
           "metrics": {"infer_time_ratio_idlora": 1.1, "compiled_infer_time_ratio_idlora": 1.05},
           "intervals": {"infer_time_ratio_idlora": [1.0, 1.2], "compiled_infer_time_ratio_idlora": [1.0, 1.1]}}
    new = {"model": "m", "quick": False, "settings": {}, "parts": {"infer": {"date": "d1"}},
           "metrics": {"infer_time_ratio_idlora": 1.2}, "intervals": {"infer_time_ratio_idlora": [1.15, 1.3]}}
    old_samples = {"infer_time_ratio_idlora": [1.1], "compiled_infer_time_ratio_idlora": [1.05]}
    merged = merge_parts({**old, "samples": old_samples},
                         {**new, "samples": {"infer_time_ratio_idlora": [1.2, 1.2]}})
    assert merged["intervals"] == {"infer_time_ratio_idlora": [1.15, 1.3],
                                   "compiled_infer_time_ratio_idlora": [1.0, 1.1]}
    # every trial's ratio follows its part like the intervals do
    assert merged["samples"] == {"infer_time_ratio_idlora": [1.2, 1.2], "compiled_infer_time_ratio_idlora": [1.05]}
    assert merged["metrics"]["compiled_infer_time_ratio_idlora"] == 1.05
    assert merged["settings"]["compile_backend"] == "inductor" and list(merged["parts"]) == ["infer", "compile"]
    # the paper-shape panel, measured alone, keeps its settings and metrics through a later run of other parts
    shapes = {**new, "settings": {"paper_shapes": {"layers": 1}}, "parts": {"shapes": {"date": "d2"}},
              "metrics": {"paper_shapes_infer_time_ratio_idlora": 1.01}, "intervals": {}}
    later = merge_parts(merge_parts(merged, shapes), new)
    assert later["settings"]["paper_shapes"] == {"layers": 1} and later["settings"]["compile_backend"] == "inductor"
    assert later["metrics"]["paper_shapes_infer_time_ratio_idlora"] == 1.01
    assert list(later["parts"]) == ["shapes", "infer", "compile"]
    # the compiled decoding pair re-measured alone keeps the compile part's metrics and its backend
    pair = {**new, "settings": {"compile_backend": "inductor"}, "parts": {"compile_decode": {"date": "d3"}},
            "metrics": {"compiled_decode_time_ratio_idlora_vs_lora_unmerged": 0.99}, "intervals": {}}
    last = merge_parts(later, pair)
    assert last["metrics"]["compiled_infer_time_ratio_idlora"] == 1.05
    assert last["metrics"]["compiled_decode_time_ratio_idlora_vs_lora_unmerged"] == 0.99
    assert list(last["parts"]) == ["shapes", "infer", "compile", "compile_decode"]
    eager = {**new, "settings": {"decode_trials": 41}, "parts": {"decode": {"date": "d4"}},
             "metrics": {"decode_time_ratio_idlora_vs_lora_unmerged": 0.99}, "intervals": {}}
    after = merge_parts(merge_parts(last, eager), new)  # the decode part's trials stay with its metric
    assert after["settings"]["decode_trials"] == 41 and after["settings"]["compile_backend"] == "inductor"
