"""The runs of each table: ``experiments/<table>.yaml`` read into :class:`Run` specs, and which run's results file
serves each of them. Below both the stage that runs a table's missing runs (``runs.orchestrate``) and the reports
that build the table from results files (``reports.tables.from_runs``), so the two read the lists by one rule.

A run is (experiment, method, overrides) at a scale. Two runs identical in effect (``effect_identity``: what their
numbers depend on) are trained once, as the first of them (``canonical_runs``): perhaps a run of an earlier table
(``RUN_TABLES`` order), which then fills both (``served_runs``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml
from omegaconf import OmegaConf

from .config import compose, effective_lr
from .errors import ConfigError
from .results import run_identity

EXPERIMENTS_DIR = Path(__file__).resolve().parents[1] / "experiments"
# The tables built from runs, in the order their runs serve one another (an earlier table's run can fill a later's).
RUN_TABLES = ("table1", "table2", "table3", "table7", "table8", "table_init", "table_rb", "table_router", "table_lr")
# Beyond the paper, ours only: table_init (its reviewers' question "why interpolative decomposition?"), table_rb (the
# Rank Boosting factor m), table_router (the router: linear, inner, the text's form, uniform) and table_lr (ID-LoRA's lr
# at mini, where every adapter shares one)
_COMPOSE_LOCK = threading.Lock()  # Hydra's compose API keeps global state: one composition at a time


@dataclass
class Run:
    """One run: the one spec of a run, for a launch and for the table it fills (``experiments/<table>.yaml`` lists
    them, ``experiment_list`` reads them). ``row`` is the table row it fills, a label only: two runs with the same
    config are the same run whatever their rows."""

    experiment: str
    method: str
    overrides: list[str] = field(default_factory=list)
    scale: str = "mini"
    row: str = field(default="", compare=False)

    def at(self, scale: str, extra=()) -> "Run":
        """This run at ``scale``, with ``extra`` overrides after its own."""
        return replace(self, scale=scale, overrides=[*self.overrides, *extra])

    def args(self) -> list[str]:
        return [f"experiment={self.experiment}", f"method={self.method}", f"scale={self.scale}", *self.overrides]

    def config(self):
        with _COMPOSE_LOCK:
            return compose(self.args())


def experiment_list(table: str) -> dict:
    """``experiments/<table>.yaml`` with its ``runs`` as :class:`Run` specs (at the default scale)."""
    path = EXPERIMENTS_DIR / f"{table}.yaml"
    if not path.exists():
        raise ConfigError(f"no experiment list {path}")
    doc = yaml.safe_load(path.read_text())
    doc["runs"] = [_run(dict(r)) for r in doc["runs"]]
    return doc


def _run(entry: dict) -> Run:
    """A list entry (row, experiment, method, overrides, run_tag) as a :class:`Run`; ``run_tag`` is its last
    override. The scale is the table's, set with ``Run.at``."""
    tag = entry.pop("run_tag", "")
    entry["overrides"] = [*entry.get("overrides", []), *([f"run_tag={tag}"] if tag else [])]
    if "row" not in entry:
        raise ConfigError(f"experiment list entry {entry} names no row")
    return Run(**entry)


def table_runs(table: str, scale: str, extra: list[str] | None = None) -> list[Run]:
    """The runs of a table; ``extra`` overrides (local copies of data and models, ...) go to every run."""
    return [run.at(scale, extra or ()) for run in experiment_list(table)["runs"]]


# A run's names, not what it computes: the experiment and run id it is filed under, the paper model it stands for.
NAME_KEYS = ("experiment", "run_id", "run_tag", "paper_model")


def effect_identity(cfg) -> dict:
    """What a run's numbers depend on: its identity (``results.run_identity``) without its names, with the lr it
    trains at in place of the experiment's. At mini both paper models map to SmolLM2 and every experiment trains
    at the scale's lr, so e.g. ``gsm8k_mistral`` and ``gsm8k_llama3`` have one effect identity."""
    plain = run_identity(OmegaConf.to_container(cfg, resolve=True))
    for key in NAME_KEYS:
        plain.pop(key, None)
    plain["train"] = {**plain["train"], "lr": effective_lr(cfg)}
    return plain


_IDENTITIES: dict[tuple, dict] = {}  # effect identity by a run's arguments (composing is the slow part)


def canonical_runs(runs: list[Run]) -> list[Run]:
    """For each run, the run whose results file serves it: the first run of ``runs`` with the same effect identity
    (``effect_identity``), often itself. A table's runs identical in effect are trained once."""
    seen: list[tuple[dict, Run]] = []
    out = []
    for run in runs:
        key = tuple(run.args())
        if key not in _IDENTITIES:
            _IDENTITIES[key] = effect_identity(run.config())
        identity = _IDENTITIES[key]
        first = next((r for ident, r in seen if ident == identity), None)
        if first is None:
            seen.append((identity, run))
        out.append(first or run)
    return out


def served_runs(table_name: str, scale: str, overrides: list[str] | None = None) -> list[tuple[Run, Run, str]]:
    """(run, the run whose results file serves it, that run's table) for each run of the table: the first run
    identical in effect (``canonical_runs``) among the runs of the tables before it (``RUN_TABLES`` order) and its
    own earlier runs; at mini, e.g., Table 3's LoRA row is Table 2's LLaMA-3 LoRA run (both are SmolLM2)."""
    before = RUN_TABLES[:RUN_TABLES.index(table_name)] if table_name in RUN_TABLES else ()
    own = experiment_list(table_name)["runs"]
    methods = {r.method for r in own}  # only a run of the same method can be identical in effect
    earlier = [(t, r) for t in before for r in experiment_list(t)["runs"]
               if r.method in methods and not any(r is o for o in own)]
    pool = [(t, r.at(scale, overrides or ())) for t, r in [*earlier, *((table_name, r) for r in own)]]
    first = canonical_runs([r for _, r in pool])
    where = {id(r): t for t, r in pool}
    return [(run, serving, where[id(serving)]) for (_, run), serving in zip(pool[len(earlier):], first[len(earlier):])]
