"""The pre-registered claims judged (``claims/preregistered.yaml``; docs/protocol.md): one rule for every verdict.

    comparison(claim, benchmark, runs_a, runs_b, bases, directory)   # one hypothesis: gates, then seed-paired stats
    judge(claims, arms)                                              # every hypothesis, in its family, adjusted

``runs_a`` / ``runs_b`` are results records (one per seed; seed s of one arm is paired with seed s of the other),
``bases`` the untrained base's records (the validity gate's reference: its dev loss), ``directory`` where their
per-example files are. ``arms`` maps a claim id to ``(runs_a, runs_b, bases, directory)`` for the claims that have runs;
a claim without is ``invalid: no runs`` and keeps its place in its family with p = 1, so the family's size is the
one the claims file fixes. The pilot (``idlora.reports.protocol``) and ``make claims`` (``idlora.reports.claims``)
both judge here.
"""

from __future__ import annotations

from pathlib import Path

from ..protocol import made_under_protocol
from . import paired
from .preregistered import COUNT, budget_problem, margin
from .tables.from_runs import per_example_scores


def by_seed(records: list[dict]) -> dict[int, dict]:
    """seed -> record (the first of a seed where a row lists one seed twice)."""
    out: dict[int, dict] = {}
    for r in records:
        out.setdefault(r["config"]["seed"], r)
    return out


def scores_by_seed(runs: dict[int, dict], directory: Path, metric: str) -> dict[int, dict]:
    """seed -> {example id: score} of ``metric`` (runs that did not score it are left out)."""
    out = {seed: per_example_scores(r, directory, metric) for seed, r in runs.items()}
    return {seed: scores for seed, scores in out.items() if scores}


def _dev(record: dict) -> float | None:
    curve = record.get("train", {}).get("dev_curve") or []
    return curve[-1]["loss"] if curve else None


def gate(runs_a: list[dict], runs_b: list[dict], base: dict | None) -> str | None:
    """Why the two arms may not be compared (``paired.validity``: a diverged run, an arm not beating the base on
    dev loss), or a missing prerequisite of that check (no base, runs without a dev loss), or None."""
    if base is None or _dev(base) is None:
        return "no untrained base run with a dev loss (the gate's reference)"
    undeveloped = [r["run_id"] for r in [*runs_a, *runs_b] if not made_under_protocol(r)]
    if undeveloped:
        return f"no dev loss recorded (runs made before the protocol): {', '.join(undeveloped)}"
    facts = {side: [paired.RunFacts(r["run_id"], r["train"].get("loss_curve") or [], -_dev(r)) for r in runs]
             for side, runs in (("arm a", runs_a), ("arm b", runs_b))}
    return paired.validity(facts, -_dev(base))


def comparison(claim: dict, bench: str, runs_a: list[dict], runs_b: list[dict], bases: list[dict],
               directory: Path) -> dict:
    """One hypothesis (claim x benchmark): ``{"claim", "benchmark", "test", "invalid", **paired_bootstrap}``, the
    statistics on the seeds both arms ran and the example ids every run scored. A row may hold runs of several
    experiments (Table 1: one per task): only those that scored ``bench`` count, and the gate's base is the untrained
    run of their experiment (``bases``: the base's records)."""
    runs_a, runs_b = ([r for r in runs if bench in r.get("metrics", {})] for runs in (runs_a, runs_b))
    experiments = {r["experiment"] for r in [*runs_a, *runs_b]}
    base = next((r for r in bases if r["experiment"] in experiments), None)
    out = {"claim": claim["id"], "kind": claim["kind"], "benchmark": bench, "test": claim["test"],
           "invalid": gate(runs_a, runs_b, base)}
    if claim.get("params") and runs_a and runs_b and not out["invalid"]:
        out["invalid"] = budget_problem(claim, runs_a[0]["trainable_params"], runs_b[0]["trainable_params"])
    a, b = by_seed(runs_a), by_seed(runs_b)
    scores_a, scores_b = scores_by_seed(a, directory, bench), scores_by_seed(b, directory, bench)
    shared = sorted(set(scores_a) & set(scores_b))
    out["runs"] = {"a": [a[s]["run_id"] for s in sorted(a)], "b": [b[s]["run_id"] for s in sorted(b)]}
    out["unpaired"] = sorted(map(str, (set(a) ^ set(b))))
    out["lr"] = {side: sorted({r["train"]["lr"] for r in runs if r["train"].get("lr")})
                 for side, runs in (("a", runs_a), ("b", runs_b))}
    if not shared:
        return {**out, "invalid": out["invalid"] or "no seed scored by both arms"}
    result = paired.paired_bootstrap({s: scores_a[s] for s in shared}, {s: scores_b[s] for s in shared},
                                     margin=margin(claim, bench))
    return {**out, **result}


def judge(claims: list[dict], arms: dict[str, tuple], pending: dict[str, str] | None = None) -> list[dict]:
    """Every hypothesis of the sampled claims, judged in its family (Holm for primary, BH for exploratory) on its
    claim's ``arms``; a claim in ``pending`` (claim id -> why: its pre-registered runs are not all made) is not
    judged, and keeps its place in the family with p = 1; count claims are left to their own check."""
    out = []
    for family in paired.FAMILIES:
        tests = []
        for claim in (c for c in claims if c["kind"] == family and c["test"] != COUNT):
            for bench in claim["benchmarks"]:
                if claim["id"] in (pending or {}):
                    tests.append({"claim": claim["id"], "kind": family, "benchmark": bench, "test": claim["test"],
                                  "invalid": None, "pending": pending[claim["id"]]})
                elif claim["id"] in arms:
                    tests.append(comparison(claim, bench, *arms[claim["id"]]))
                else:
                    tests.append({"claim": claim["id"], "kind": family, "benchmark": bench, "test": claim["test"],
                                  "invalid": "no runs"})
        out += paired.judge_family(tests, family)
    return out


def p_of(test: dict) -> float | None:
    """The p the verdict used (before adjustment), or None for a test without statistics."""
    if "effect" not in test:
        return None
    return test["p_noninferior"] if test["test"] == paired.NON_INFERIORITY else test["p"]
