"""The pre-registered claims judged and published (``make claims``): CLAIMS.md's first sections, a plot of the primary
effects, and their entries in claims.json.

    make_claims(scale, results_dir, bench_file, out_dir)   # claims.json, CLAIMS.md, claims_primary.png

Each hypothesis of ``claims/preregistered.yaml`` is judged by ``verdicts.judge`` (seed-paired, the validity gates,
Holm / Benjamini-Hochberg in its family) on the runs made under the fair protocol where they exist (its pilot's final
runs, ``claims/protocol.yaml``'s ``pilot.claims``, at the pilot's scale), else on the tables' runs (made before the
protocol: their comparisons read ``invalid`` until the regeneration). CLAIMS.md opens with the primary claims at a
glance and the A/A calibration's false-resolution rate; the earlier, not pre-registered verdicts
(``reports.claims``) follow.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from .. import regeneration
from ..protocol import load_protocol, load_records, pilot_records, runs_dir
from . import claims as earlier
from . import verdicts
from .plotting import pyplot, save
from .preregistered import COUNT, load_claims
from .protocol import aa_calibration, horizon_summary, pilot_arms
from .tables.from_runs import TableRuns

FIGURE = "claims_primary.png"


def _base_row(tr: TableRuns, arm: str) -> list[dict]:
    """The untrained base's records beside ``arm`` (``<model>/base`` in Tables 1-2, ``base`` elsewhere)."""
    return tr.records.get(f"{arm.split('/')[0]}/base" if "/" in arm else "base") or []


def protocol_evidence(scale: str) -> dict:
    """What the fair protocol's pilot says at ``scale`` (nothing at any other): ``arms`` and ``pending``
    (``pilot_arms``: the claims whose two arms ran every final seed, and why the others wait), ``aa`` (its A/A
    calibration) and ``horizon`` (whether the step budget binds the comparison: ``horizon_summary``)."""
    protocol = load_protocol()
    records = [r for r in pilot_records(protocol, load_records(protocol)) if r.get("scale") == scale]
    if not records:
        return {"arms": {}, "pending": {}, "aa": None, "horizon": None}
    arms, pending = pilot_arms(protocol, records)
    return {"arms": arms, "pending": pending, "aa": aa_calibration(protocol, records),
            "horizon": horizon_summary(protocol, records)}


def preregistered(runs: dict[str, TableRuns], protocol_arms: dict | None = None,
                  pending: dict | None = None) -> list[dict]:
    """``claims/preregistered.yaml``'s hypotheses judged (``verdicts.judge``), each claim on ``protocol_arms`` where
    it has them (the protocol's runs; entries then carry ``"under": <their directory>``), not yet where the protocol
    has begun its runs (``pending``: why), else on the tables' runs."""
    claims, arms, pending = load_claims(), {}, dict(pending or {})
    protocol = load_protocol()
    for c in claims:
        tr = runs.get(c["table"])
        if c["test"] != COUNT and tr is not None and tr.records.get(c["arm_a"]) and tr.records.get(c["arm_b"]):
            arms[c["id"]] = (tr.records[c["arm_a"]], tr.records[c["arm_b"]], _base_row(tr, c["arm_a"]),
                             tr.directory)
            if tr.directory == runs_dir(protocol):  # a regenerated table: judged once, on every seed it fixes
                why = _missing_seeds(protocol, c, tr)
                pending.update({c["id"]: why} if why else {})
    arms.update(protocol_arms or {})
    tests = verdicts.judge(claims, arms, pending)
    for t in tests:
        if t.get("pending") or Path(arms.get(t["claim"], (None,) * 3 + ("",))[3]) == runs_dir(protocol):
            t["under"] = str(runs_dir(protocol))
    return tests


def _missing_seeds(protocol: dict, claim: dict, tr: TableRuns) -> str | None:
    """Why a claim of a regenerated table is not judged yet: an arm lacks a seed the protocol fixes for its row."""
    short = {}
    for row in (claim["arm_a"], claim["arm_b"]):
        have = {r["config"]["seed"] for r in tr.records.get(row, [])}
        short[row] = [s for s in regeneration.seeds_of(protocol, claim["table"], row, load_claims()) if s not in have]
    lacking = [f"{row} lacks final seed(s) {s}" for row, s in short.items() if s]
    return "; ".join(lacking) + "; judged once all have run" if lacking else None


def _about(t: dict, scale: str) -> str:
    """One line on what a verdict is about: the protocol, the scale, the seeds a side, the pairing, the lrs."""
    if "effect" not in t:
        return f"at {scale}"
    lr = " vs ".join("/".join(f"{x:g}" for x in t["lr"][side]) or "—" for side in ("a", "b"))
    how = f"fair protocol (`{t['under']}`): each tuned on dev, " if t.get("under") else "tables' runs: "
    return (f"{how}at {scale}, {len(t['seeds'])} seed pairs ({len(t['runs']['a'])} vs {len(t['runs']['b'])} runs), "
            f"paired by seed and example, lr {lr}")


def _aa_line(aa: dict | None) -> str:
    if aa is None:
        return ("**A/A calibration**: not run yet (`python scripts/protocol.py stage=aa`): the false-resolution rate "
                "is unknown.")
    return (f"**A/A calibration** (the pilot's LoRA final seeds against its A/A seeds, {aa['pairs']} pairs, judged as "
            f"two methods): {aa['resolved']} of {aa['judged']} benchmarks resolved, a false-resolution rate of "
            f"{aa['rate']:.2f} against the nominal 0.05 (bootstrap's p alone {aa['resolved_bootstrap']}, t test's "
            f"alone {aa['resolved_t']}; per benchmark: results/protocol/pilot/pilot.md). With "
            f"{aa['judged']} hypotheses the rate is a coarse check.")


def glance(tests: list[dict], aa: dict | None, horizon: dict | None = None) -> list[str]:
    """The primary claims at a glance: each claim's verdicts counted over its benchmarks, what judged them."""
    lines = ["## At a glance: the primary claims", "",
             f"![primary effects]({FIGURE}) ({FIGURE}: each primary hypothesis's effect with its 95% interval and, "
             "for non-inferiority, its margin.)", "",
             "| primary claim | hypotheses | verdicts | judged on |", "|---|---|---|---|"]
    by_claim: dict[str, list[dict]] = {}
    for t in tests:
        if t["kind"] == "primary":
            by_claim.setdefault(t["claim"], []).append(t)
    for claim, ts in by_claim.items():
        counts = Counter(t["verdict"].split(":")[0] for t in ts)
        how = {f"fair protocol, {len(t['seeds'])} seed pairs" if t.get("under") and "seeds" in t else
               "fair protocol, runs under way" if t.get("pending") else "runs before the protocol" for t in ts}
        lines.append(f"| {claim} | {len(ts)} | {', '.join(f'{n} {v}' for v, n in sorted(counts.items()))} | "
                     f"{'; '.join(sorted(how))} |")
    budget = ([f"**Step budget** (results/protocol/pilot/horizon.md): {horizon['verdict']}.", ""]
              if horizon else [])
    return lines + ["", _aa_line(aa), "", *budget]


def preregistered_markdown(tests: list[dict], scale: str) -> list[str]:
    lines = ["## Pre-registered claims", "",
             "The hypotheses of `claims/preregistered.yaml` (written before the runs that judge them; docs/protocol.md), "
             "one row per claim and benchmark: a − b in points, the mean over seed pairs of the per-seed difference "
             "on the same test items, with the 95% bootstrap interval over seed pairs then items; p, the larger of "
             "the bootstrap's and the t test's over seeds (one-sided at the margin for non-inferiority), adjusted by "
             "Holm across the primary hypotheses and Benjamini-Hochberg (q = 0.1) across the exploratory ones. A "
             "comparison is judged only behind the validity gates (both arms beat the untrained base on dev loss, no "
             "run diverged), on the fair protocol's runs where they exist; runs made before the protocol record no "
             "dev loss, so their comparisons read `invalid` until the regeneration.", "",
             "| claim | kind | benchmark | about | a − b [95% CI] | p | adjusted | verdict |",
             "|---|---|---|---|---|---|---|---|"]
    for t in tests:
        p = verdicts.p_of(t)
        effect = f"{t['effect']:+.1f} [{t['low']:+.1f}, {t['high']:+.1f}]" if "effect" in t else "—"
        lines.append(f"| {t['claim']} | {t['kind']} | {t['benchmark']} | {_about(t, scale)} | {effect} | "
                     f"{earlier._num(p, '{:.3g}')} | {t['p_adjusted']:.3g} | {t['verdict']} |")
    return lines + ["", "## Earlier verdicts (not pre-registered: the mini protocol before issue 36)", ""]


def primary_figure(tests: list[dict], path: Path) -> Path:
    """Each primary hypothesis with statistics: its effect and 95% interval, the non-inferiority margin (red) or 0;
    invalid comparisons grey; each labelled with its verdict."""
    rows = [t for t in tests if t["kind"] == "primary" and "effect" in t]
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(rows) + 1.2))
    for y, t in enumerate(reversed(rows)):
        color = "0.6" if t["invalid"] else "C0"
        ax.plot([t["low"], t["high"]], [y, y], color=color, lw=2)
        ax.plot(t["effect"], y, "o", color=color)
        if t.get("margin"):
            ax.plot(-t["margin"], y, "|", color="red", markersize=10)
    ax.axvline(0, color="k", lw=0.8)
    labels = [f"{t['claim']} · {t['benchmark']}: {t['verdict'].split(':')[0]}" for t in reversed(rows)]
    ax.set_yticks(range(len(rows)), labels, fontsize=7)
    ax.set_xlabel("a − b (points), 95% interval; red: non-inferiority margin")
    ax.set_title("Primary hypotheses", fontsize=9)
    return save(fig, path)


def make_claims(scale: str = "mini", results_dir: str | Path = "results/runs",
                bench_file: str | Path = "results/bench/efficiency.json", out_dir: str | Path = "results") -> list[Path]:
    """claims.json, CLAIMS.md and the primary effects' plot: the pre-registered claims (judged on the protocol's runs
    where they exist), then the earlier verdicts (``reports.claims``)."""
    runs = earlier.table_runs(scale, results_dir)
    claims = earlier.build_claims(scale, results_dir, bench_file, runs=runs)
    evidence = protocol_evidence(scale)
    tests = preregistered(runs, evidence["arms"], evidence["pending"])
    head = [*glance(tests, evidence["aa"], evidence["horizon"]), *preregistered_markdown(tests, scale)]
    return [*earlier.write(claims, scale, out_dir, head, {"preregistered": tests, "aa_calibration": evidence["aa"],
                                                          "horizon_check": evidence["horizon"],
                                                          "protocol_runs": str(runs_dir(load_protocol()))}),
            primary_figure(tests, Path(out_dir) / FIGURE)]
