"""The results file of ``make bench`` (``results/bench/efficiency.json``) as data: which part measures a metric, the
runs a file keeps (``history``), and the spread between runs. Beside ``results.py`` (a run's results file), below
``idlora.bench`` and ``idlora.reports``, so that the reports (Figure 3, the claims) read the file by the same rules
as the benchmark that writes it."""

from __future__ import annotations

from .stats import t_interval

BENCH_PARTS = ("shapes", "infer", "decode", "train", "pmrc", "compile", "compile_decode")
SHAPES = "paper_shapes_"  # the prefix of the paper-shape panel's metrics (part ``shapes``)
# ID-LoRA's batch-1 decoding over unmerged LoRA's, paired directly (part ``decode``; compiled: "compiled_" + PAIR_KEY)
PAIR_KEY = "decode_time_ratio_idlora_vs_lora_unmerged"


def metric_part(key: str) -> str:
    """Which part of the benchmark measures a metric key."""
    for prefix, part in ((SHAPES, "shapes"), ("pmrc_", "pmrc"), ("train_step_", "train"), (PAIR_KEY, "decode"),
                         ("compiled_decode_", "compile_decode"), ("compiled_", "compile")):
        if key.startswith(prefix):
            return part
    return "infer"


def run_summary(report: dict, part: str, provenance: dict | None = None) -> dict:
    """One run of a part as ``history`` keeps it when the part is re-measured: its provenance, and per metric the
    median, the 95% interval and n (its trials), so between-run spread can be computed from the file."""
    intervals, samples = report.get("intervals") or {}, report.get("samples") or {}
    return {"part": part, **(provenance or (report.get("parts") or {}).get(part) or {}),
            "metrics": {k: {"median": v, "interval": intervals.get(k), "n": len(samples.get(k) or [])}
                        for k, v in (report.get("metrics") or {}).items() if metric_part(k) == part}}


# The first date (UTC, ISO) from which the code a part times is the current code: runs before it timed other code
# and are kept in ``history`` but not pooled by ``between_runs``. Move a part's date when changing what it times.
# 2026-12-03T10:49 the leaner eager decoding path (mix_bases, no PEFT lookups); 18:19 the one-token compiled path.
CODE_SINCE = {"shapes": "2026-12-03T10:49", "infer": "2026-12-03T10:49", "decode": "2026-12-03T10:49",
              "compile": "2026-12-03T18:19", "compile_decode": "2026-12-03T18:19"}


def between_runs(report: dict, key: str, since: str | None = None) -> dict | None:
    """``key``'s median in each recorded run (``history``, then the current one) dated at or after ``since`` (an
    ISO date; default ``CODE_SINCE`` of its part: runs of the current code), with the mean and Student-t 95% interval
    over those runs; None below 2 runs."""
    part = metric_part(key)
    since = CODE_SINCE.get(part, "") if since is None else since
    runs = [(r.get("date", ""), r["metrics"][key]["median"]) for r in report.get("history") or []
            if r.get("part") == part and key in r["metrics"]]
    if key in (report.get("metrics") or {}):
        runs.append((((report.get("parts") or {}).get(part) or {}).get("date", ""), report["metrics"][key]))
    runs = [(d, m) for d, m in runs if d >= since]
    if len(runs) < 2:
        return None
    return {**t_interval([m for _, m in runs]), "dates": [d for d, _ in runs], "medians": [m for _, m in runs]}
