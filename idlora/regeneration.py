"""Each table's runs as the fair protocol makes them (issue 37; docs/protocol.md): the regeneration of the mini tables.

    arms(table)                                         # the table's arms: its rows' runs without their seed
    seeds_of(protocol, table, row, claims)              # a row's final seeds: 5 primary, 3 other claim, 1 else
    final_runs(protocol, table, choices, claims)        # every arm at its method's choice on its seeds, the bases
    served_final_runs(protocol, table, records, claims) # (run, the run that serves it, its table), filed
    distinct_runs(protocol, table, records, claims)     # what the table trains: each serving run once
    is_regenerated(protocol, table, scale)              # is the table built from the protocol's runs?

``claims``: ``claims/preregistered.yaml``'s entries (``reports.preregistered.load_claims``), which decide the seeds.

An *arm* is a row of ``experiments/<table>.yaml`` without its seed: (row, experiment, method, overrides), its run
tag's seed suffix (``_s1``) dropped. Under the protocol every arm trains at its method's choice (``protocol.choose``:
each method tuned once, on the pilot's experiment, with the same budget; an ablation arm of a method, e.g. ID-LoRA
without Rank Boosting, trains at that method's choice) on the first ``seeds_of`` of ``final_seeds``, the pilot's
overrides (real data where shipped) and schedule included; each experiment of the table gets one untrained base run.
A run's tag is ``_final_s<seed>`` then the arm's own tag (``_final_s1_norb``), so its stage and seed read back from
its file as the pilot's do, and a table's run identical in effect to an earlier table's (or the pilot's) is that run
(``experiments.canonical_runs``): Table 2's ID-LoRA seed 1 is the pilot's ``multitask_llama3.mini.idlora_final_s1``.
"""

from __future__ import annotations

import re

from .errors import ConfigError
from .experiments import RUN_TABLES, Run, canonical_runs, experiment_list
from .protocol import base_overrides, choose, filed_overrides, final_overrides

PRIMARY_SEEDS, CLAIM_SEEDS, OTHER_SEEDS = 5, 3, 1
SEEDS = (PRIMARY_SEEDS, CLAIM_SEEDS, OTHER_SEEDS)  # a row in a primary claim, in another claim, in none
_SEED_TAG = re.compile(r"_s\d+$")


def arms(table: str) -> list[Run]:
    """The table's arms in list order, each once: its rows' runs without ``seed=`` and with the run tag's seed suffix
    dropped (the arm's own tag, e.g. ``_norb``, kept)."""
    out, seen = [], set()
    for run in experiment_list(table)["runs"]:
        overrides = [o for o in run.overrides if not o.startswith("seed=")]
        overrides = [f"run_tag={_SEED_TAG.sub('', o[len('run_tag='):])}" if o.startswith("run_tag=") else o
                     for o in overrides]
        overrides = [o for o in overrides if o != "run_tag="]
        key = (run.row, run.experiment, run.method, tuple(overrides))
        if key not in seen:
            seen.add(key)
            out.append(Run(run.experiment, run.method, overrides, row=run.row))
    return out


def seeds_of(protocol: dict, table: str, row: str, claims: list[dict]) -> list[int]:
    """The final seeds of a row: the first 5 of ``final_seeds`` for a row in a primary claim, 3 for a row in any
    other claim, 1 otherwise."""
    kinds = {c["kind"] for c in claims if c["table"] == table and row in (c["arm_a"], c["arm_b"])}
    n = PRIMARY_SEEDS if "primary" in kinds else CLAIM_SEEDS if kinds else OTHER_SEEDS
    return list(protocol["final_seeds"][:n])


def _tag(arm: Run) -> str:
    return next((o[len("run_tag="):] for o in arm.overrides if o.startswith("run_tag=")), "")


def final_runs(protocol: dict, table: str, choices: dict, claims: list[dict], scale: str = "mini") -> list[Run]:
    """The table's runs under the protocol: one base per experiment, then every arm on its seeds at its method's
    choice (``choices``: method -> {"lr", "step"}; an arm whose method has none is left out), seed-major (seed s of
    every arm before seed s+1, so an interrupted batch leaves whole pairs)."""
    table_arms = arms(table)
    experiments = dict.fromkeys(a.experiment for a in table_arms)
    out = [Run(e, "base", base_overrides(protocol), row=_base_row(table_arms, e)).at(scale) for e in experiments]
    for seed in protocol["final_seeds"]:
        for arm in (a for a in table_arms if a.method in choices):
            if seed not in seeds_of(protocol, table, arm.row, claims):
                continue
            own = [o for o in arm.overrides if not o.startswith("run_tag=")]
            schedule = final_overrides(protocol, arm.method, choices[arm.method], seed)  # ends run_tag=_final_s<seed>
            out.append(Run(arm.experiment, arm.method, [*own, *schedule[:-1], f"{schedule[-1]}{_tag(arm)}"],
                           row=arm.row).at(scale))
    return out


def _base_row(table_arms: list[Run], experiment: str) -> str:
    return next((a.row for a in table_arms if a.method == "base" and a.experiment == experiment), "base")


def methods_of(table: str) -> list[str]:
    """The trained methods of a table's arms, in list order: the methods its regeneration needs tuned."""
    return list(dict.fromkeys(a.method for a in arms(table) if a.method != "base"))


def served_final_runs(protocol: dict, table: str, records: list[dict], claims: list[dict],
                      scale: str = "mini") -> list[tuple[Run, Run, str]]:
    """(run, the run whose results file serves it, that run's table) for each of the table's protocol runs, filed in
    the protocol's runs directory (``protocol.filed_overrides``): the first run identical in effect among the protocol
    runs of the tables before it (``RUN_TABLES`` order) and its own. The choices are read from the tuning runs'
    ``records`` (``protocol.choose``, which refuses while a method of the table is not tuned)."""
    before = RUN_TABLES[:RUN_TABLES.index(table)] if table in RUN_TABLES else ()
    choices = choose(protocol, records, methods_of(table))
    own = [(table, r) for r in final_runs(protocol, table, choices, claims, scale)]
    earlier = [(t, r) for t in before for r in final_runs(protocol, t, choices, claims, scale)]
    pool = [(t, r.at(scale, filed_overrides(protocol))) for t, r in [*earlier, *own]]
    first = canonical_runs([r for _, r in pool])
    where = {id(r): t for t, r in pool}
    return [(run, serving, where[id(serving)])
            for (_, run), serving in zip(pool[len(earlier):], first[len(earlier):])]


def distinct_runs(protocol: dict, table: str, records: list[dict], claims: list[dict], scale: str = "mini") -> list[Run]:
    """The runs a regenerated table trains: each serving run of ``served_final_runs`` once."""
    served = served_final_runs(protocol, table, records, claims, scale)
    return list({tuple(s.args()): s for _, s, _ in served}.values())


def is_regenerated(protocol: dict, table: str, scale: str) -> bool:
    """Whether ``table`` at ``scale`` is built from the protocol's runs (``regenerated`` in claims/protocol.yaml;
    only the mini scale is regenerated); refuses a listed name that is no table of runs."""
    unknown = [t for t in protocol["regenerated"] if t not in RUN_TABLES]
    if unknown:
        raise ConfigError(f"claims/protocol.yaml: regenerated lists {unknown}, which are not tables of runs; "
                          f"choose among {', '.join(RUN_TABLES)}")
    return scale == "mini" and table in protocol["regenerated"]
