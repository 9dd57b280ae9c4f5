"""What regenerating the mini tables under the fair protocol costs on this machine, projected from the pilot's
measured run times (``results/protocol/pilot/cost.md``, written with the pilot's report).

The unit is an *arm*: a table row's runs without their seed (experiment, method, overrides), counted once over the
tables (``experiments.served_runs``: a run identical in effect to an earlier table's is that table's). Per arm:

- **tuning**: the protocol's lr candidates (``lr_grid``) on the tuning seed (no scoring), either on the arm's own
  experiment (plan *per arm*) or once per method (plan *per method*: each method tuned once on the pilot's
  experiment, every arm of that method trained at its choice);
- **final runs**: 5 seeds for a row in a primary claim, 3 for a row in any other claim, 1 for a row in none
  (``claims/preregistered.yaml``), each trained and scored once; plus one untrained base run per experiment.

A tuning run costs the median training time of the pilot's tuning runs, a final run the median training plus scoring
time of its final and A/A runs (one thread each, two runs at once: wall time is half the CPU time). Every experiment
is assumed to cost what the pilot's multi-task one does: single-task runs score one benchmark, not four, so their
projection is an upper bound. The pilot's own runs (Table 2's ID-LoRA and LoRA) are counted as if still to run.

Beside the projection, ``measured``: for each table already regenerated, the seconds its runs took (training and
scoring, from their results files), counting the runs trained for that table, not those an earlier table's serve.
"""

from __future__ import annotations

from statistics import median

from .. import regeneration
from ..experiments import RUN_TABLES, served_runs
from ..protocol import grid, stage_of
from .preregistered import load_claims

JOBS = 2  # runs at once on this machine, one thread each


def _arm(run) -> tuple:
    return run.experiment, run.method, tuple(o for o in run.overrides if not o.startswith(("seed=", "run_tag=")))


def table_arms(protocol: dict, scale: str = "mini") -> dict[str, dict[tuple, int]]:
    """table -> {arm: seeds} for the arms first trained for that table (an arm served by an earlier table's run is
    that table's; its seeds are the most any of its rows asks for: ``regeneration.seeds_of``)."""
    claims, out, seen = load_claims(), {}, {}
    for table in RUN_TABLES:
        for run, serving, where in served_runs(table, scale):
            arm = _arm(serving)
            owner = seen.setdefault(arm, where)
            arms = out.setdefault(owner, {})
            arms[arm] = max(arms.get(arm, 0), len(regeneration.seeds_of(protocol, table, run.row, claims)))
    return {t: out.get(t, {}) for t in RUN_TABLES}


def unit_seconds(records: list[dict]) -> dict:
    """The pilot's measured seconds: a tuning run (training), a final run (training and scoring), with counts."""
    tune = [r["train"]["seconds"] for r in records if stage_of(r) == "tune"]
    final = [_seconds(r) for r in records if stage_of(r) in ("final", "aa")]
    return {"tune_s": median(tune) if tune else None, "final_s": median(final) if final else None,
            "n_tune": len(tune), "n_final": len(final)}


def scoring_seconds(record: dict) -> float:
    """A run's measured seconds of scoring: each benchmark's."""
    return sum(b.get("seconds") or 0 for b in (record.get("benchmarks") or {}).values())


def _seconds(record: dict) -> float:
    """A run's measured seconds: its training and its scoring."""
    return record["train"]["seconds"] + scoring_seconds(record)


def measured(protocol: dict, records: list[dict], scale: str = "mini") -> list[dict]:
    """Per regenerated table: the protocol runs trained for it (``regeneration.served_final_runs``: not those an
    earlier table's run serves), how many have a results file, and their measured CPU hours (one thread a run)."""
    by_id, claims, out = {r["run_id"]: r for r in records}, load_claims(), []
    for table in protocol.get("regenerated") or []:
        served = regeneration.served_final_runs(protocol, table, records, claims, scale)
        owner = {s.config().run_id: where for _, s, where in served}  # composed once a serving run
        own = sorted(i for i, where in owner.items() if where == table)
        seconds = [_seconds(by_id[i]) for i in own if i in by_id]
        out.append({"table": table, "runs": len(own), "found": len(seconds), "cpu_h": sum(seconds) / 3600,
                    "median_s": median(seconds) if seconds else None, "served_by_earlier": len(owner) - len(own)})
    return out


def projection(protocol: dict, records: list[dict], scale: str = "mini") -> dict | None:
    """Per table and in total: arms, tuning runs (both plans), final and base runs, CPU and wall hours."""
    unit = unit_seconds(records)
    if unit["tune_s"] is None or unit["final_s"] is None:
        return None
    candidates = len(grid(protocol, "lora"))
    rows, methods_tuned, experiments = [], set(), set()
    for table, arms in table_arms(protocol, scale).items():
        new_methods = {m for _, m, _ in arms} - methods_tuned
        new_experiments = {e for e, _, _ in arms} - experiments
        methods_tuned |= new_methods
        experiments |= new_experiments
        finals = sum(arms.values()) + len(new_experiments)  # the base: one per experiment
        rows.append({"table": table, "arms": len(arms), "final_runs": finals,
                     "tune_runs_per_arm": candidates * len(arms), "tune_runs_per_method": candidates * len(new_methods)})
    for row in rows:
        for plan in ("per_arm", "per_method"):
            cpu = row[f"tune_runs_{plan}"] * unit["tune_s"] + row["final_runs"] * unit["final_s"]
            row[f"cpu_h_{plan}"], row[f"wall_h_{plan}"] = cpu / 3600, cpu / 3600 / JOBS
    total = {k: sum(r[k] for r in rows) for k in rows[0] if k != "table"}
    return {"unit": unit, "jobs": JOBS, "seeds": list(regeneration.SEEDS), "tables": rows,
            "total": total}


def markdown(p: dict | None) -> str:
    lines = ["# The regeneration's cost under the fair protocol (projected)", "",
             "Generated with the pilot's report (`python scripts/protocol.py stage=report`, "
             "`idlora/reports/protocol_cost.py`, which says what is counted). Measured on this machine by the pilot: ", ""]
    if p is None:
        return "\n".join(lines + ["Not yet: the pilot has no tuning or final run."]) + "\n"
    u = p["unit"]
    lines += [f"- a tuning run: {u['tune_s']:.0f} s of training (median of {u['n_tune']});",
              f"- a final run: {u['final_s']:.0f} s of training and scoring (median of {u['n_final']});",
              f"- one thread a run, {p['jobs']} runs at once: wall hours are half the CPU hours.", "",
              f"Seeds a row: {p['seeds'][0]} in a primary claim, {p['seeds'][1]} in another claim, {p['seeds'][2]} "
              "otherwise; each arm counted in the first table that trains it.", "",
              "| table | arms | final runs (with bases) | tuning runs, per arm | wall h, per arm | tuning runs, per "
              "method | wall h, per method |", "|---|---|---|---|---|---|---|"]
    for r in [*p["tables"], {"table": "**total**", **p["total"]}]:
        lines.append(f"| {r['table']} | {r['arms']} | {r['final_runs']} | {r['tune_runs_per_arm']} | "
                     f"{r['wall_h_per_arm']:.1f} | {r['tune_runs_per_method']} | {r['wall_h_per_method']:.1f} |")
    return "\n".join(lines + _measured_markdown(p.get("measured") or [])) + "\n"


def _measured_markdown(rows: list[dict]) -> list[str]:
    if not rows:
        return []
    lines = ["", "## Measured: the regenerated tables", "",
             "The runs each regenerated table trained (runs an earlier table's serve are that table's), their seconds "
             "of training and scoring summed from their results files; one thread a run.", "",
             "| table | runs trained for it | with a results file | served by an earlier table's | CPU h | "
             "median s a run | wall h, 2 at once |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        median_s = "—" if r["median_s"] is None else f"{r['median_s']:.0f}"
        lines.append(f"| {r['table']} | {r['runs']} | {r['found']} | {r['served_by_earlier']} | {r['cpu_h']:.1f} | "
                     f"{median_s} | {r['cpu_h'] / JOBS:.1f} |")
    return lines
