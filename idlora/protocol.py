"""The fair protocol's fixed choices and its selection rule (``claims/protocol.yaml``; docs/protocol.md).

    protocol = load_protocol()
    protocol["lr_grid"]["adapters"]                     # the 4 candidates every adapter method gets
    tuning_overrides(protocol, "lora", 1e-3)            # Hydra overrides of a tuning run
    choice = choose(protocol, records)["lora"]          # {"lr", "step", "dev_loss", "edge", ...} from the tuning files
    final_overrides(protocol, "lora", choice, seed=1)   # a final run: the chosen lr, stopped at the chosen step

Reads files and config only: the runs stage (``idlora.runs.tuning``) launches what these overrides describe, the
reports stage (``idlora.reports.protocol``) summarises the same files with the same ``choose``.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import yaml

from .errors import ConfigError
from .results import record_files

PROTOCOL_FILE = Path(__file__).resolve().parents[1] / "claims" / "protocol.yaml"
CLAIMS_FILE = PROTOCOL_FILE.with_name("preregistered.yaml")  # checked by reports.preregistered.load_claims
KEYS = {"tuning_seed", "final_seeds", "aa_seeds", "schedule", "checkpoints", "lr_grid", "objective", "pilot",
        "horizon_check", "regenerated"}
SCHEDULE_KEYS = {"warmup_steps", "lr_scheduler", "horizon"}
GRID_KEYS = {"adapters", "fft"}
OBJECTIVES = {"dev_loss"}
PILOT_KEYS = {"experiment", "methods", "claims", "overrides", "results_dir"}
HORIZON_KEYS = {"methods", "horizon", "tolerance"}
TAGS = {"tune": "_tune", "final": "_final", "aa": "_aa", "horizon": "_horizon"}  # run_tag prefixes: a run's stage


def load_protocol(path: str | Path = PROTOCOL_FILE) -> dict:
    """The protocol file, checked: every key known, seeds disjoint, checkpoints multiples of the first within the
    horizon, grids of equal length; else one ConfigError naming what to fix."""
    doc = yaml.safe_load(Path(path).read_text())
    problems = _problems(doc if isinstance(doc, dict) else {})
    if problems:
        raise ConfigError(f"{path}: " + "; ".join(problems) + ".")
    return doc


def _problems(doc: dict) -> list[str]:
    out = [f"unknown key {k!r} (known: {', '.join(sorted(KEYS))})" for k in sorted(set(doc) - KEYS)]
    out += [f"missing key {k!r}" for k in sorted(KEYS - set(doc))]
    if out:
        return out
    for name, group, known in (("schedule", doc["schedule"], SCHEDULE_KEYS), ("lr_grid", doc["lr_grid"], GRID_KEYS),
                               ("pilot", doc["pilot"], PILOT_KEYS),
                               ("horizon_check", doc["horizon_check"], HORIZON_KEYS)):
        if not isinstance(group, dict) or set(group) != known:
            out.append(f"{name} must have exactly the keys {', '.join(sorted(known))}")
    seeds = [doc["tuning_seed"], *doc["final_seeds"], *doc["aa_seeds"]]
    if len(set(seeds)) != len(seeds):
        out.append("tuning_seed, final_seeds and aa_seeds must not share a seed")
    if len(doc["aa_seeds"]) != len(doc["final_seeds"]):
        out.append("aa_seeds must be as many as final_seeds (the A/A pairs them in order)")
    ckpts, horizon = doc["checkpoints"], (doc.get("schedule") or {}).get("horizon")
    if not ckpts or any(c % ckpts[0] for c in ckpts) or sorted(set(ckpts)) != ckpts or ckpts[-1] != horizon:
        out.append("checkpoints must rise, be multiples of the first (train.save_steps) and end at schedule.horizon")
    grids = list((doc.get("lr_grid") or {}).values())
    if len({len(g) for g in grids}) > 1 or any(sorted(g) != g or min(g) <= 0 for g in grids):
        out.append("every lr_grid list must have as many rising positive candidates (an equal tuning budget)")
    out += _horizon_problems(doc)
    if not isinstance(doc["regenerated"], list) or not all(isinstance(t, str) for t in doc["regenerated"]):
        out.append("regenerated must be a list of table names (experiments/<table>.yaml)")
    objective = doc["objective"]
    if not isinstance(objective, dict) or objective.get("metric") not in OBJECTIVES or "tie" not in objective:
        out.append(f"objective must be {{metric: one of {sorted(OBJECTIVES)}, tie: <loss difference>}}")
    return out


def _horizon_problems(doc: dict) -> list[str]:
    check, pilot = doc["horizon_check"], doc["pilot"]
    if not isinstance(check, dict) or set(check) != HORIZON_KEYS or not isinstance(pilot, dict):
        return []
    out = []
    if len(check["methods"]) != 2 or not set(check["methods"]) <= set(pilot.get("methods") or []):
        out.append("horizon_check.methods must be two of pilot.methods (the gap a - b is compared)")
    first, horizon = doc["checkpoints"][0], (doc.get("schedule") or {}).get("horizon")
    stretched = check["horizon"]
    if not isinstance(stretched, int) or horizon is None or stretched <= horizon or stretched % first:
        out.append("horizon_check.horizon must be a multiple of the first checkpoint beyond schedule.horizon")
    return out


def read_claims(path: str | Path = CLAIMS_FILE):
    """The pre-registered claims file as written (``reports.preregistered.load_claims`` checks it; the seeds rule of
    the regeneration reads only each claim's table, rows and kind)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"no claims file {path}: the pre-registered claims live in claims/preregistered.yaml")
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def grid(protocol: dict, method: str) -> list[float]:
    """The lr candidates of ``method``: full fine-tuning's grid, or the adapters' (the same for every adapter)."""
    return list(protocol["lr_grid"]["fft" if method == "fft" else "adapters"])


def _schedule(protocol: dict, horizon: int | None = None) -> list[str]:
    s, ckpts = protocol["schedule"], protocol["checkpoints"]
    return [f"train.warmup_steps={s['warmup_steps']}", f"train.lr_scheduler={s['lr_scheduler']}",
            f"train.schedule_steps={horizon or s['horizon']}", f"scale.save_steps={ckpts[0]}", "train.dev_loss=true",
            "train.wandb=false", *protocol["pilot"]["overrides"]]


def _lr(method: str, lr: float) -> str:
    return f"++scale.lr.{method}={lr:g}"


def tuning_overrides(protocol: dict, method: str, lr: float) -> list[str]:
    """A tuning run: ``lr`` on the tuning seed for the whole horizon, dev loss at every checkpoint, no test scored."""
    seed = protocol["tuning_seed"]
    return [*_schedule(protocol), _lr(method, lr), f"scale.max_steps={protocol['schedule']['horizon']}",
            f"seed={seed}", f"run_tag={TAGS['tune']}_lr{lr:g}_s{seed}", "eval.benchmarks=[]"]


def horizon_overrides(protocol: dict, method: str, lr: float) -> list[str]:
    """The horizon check's run (``horizon_check``): a tuning run at ``lr`` with the horizon, and so the decay,
    stretched to ``horizon_check.horizon``; dev loss at every multiple of the first checkpoint, no test scored."""
    seed, horizon = protocol["tuning_seed"], protocol["horizon_check"]["horizon"]
    return [*_schedule(protocol, horizon), _lr(method, lr), f"scale.max_steps={horizon}", f"seed={seed}",
            f"run_tag={TAGS['horizon']}_{horizon}_lr{lr:g}_s{seed}", "eval.benchmarks=[]"]


def final_overrides(protocol: dict, method: str, choice: dict, seed: int, stage: str = "final") -> list[str]:
    """A final (or A/A) run on ``seed``: the chosen lr, stopped at the chosen checkpoint of the same schedule, every
    benchmark of the experiment scored once."""
    return [*_schedule(protocol), _lr(method, choice["lr"]), f"scale.max_steps={choice['step']}", f"seed={seed}",
            f"run_tag={TAGS[stage]}_s{seed}"]


def base_overrides(protocol: dict) -> list[str]:
    """The untrained base: its dev loss (the validity gate's reference) and its test scores."""
    return [*_schedule(protocol), f"seed={protocol['tuning_seed']}", "run_tag=_protocol"]


def stage_of(record: dict) -> str | None:
    """'tune', 'final', 'aa' or 'horizon' from a results record's run tag, else None."""
    tag = record["config"].get("run_tag", "")
    return next((stage for stage, prefix in TAGS.items() if tag.startswith(prefix + "_")), None)


def candidates(protocol: dict, records: list[dict], method: str) -> list[dict]:
    """Every (lr, checkpoint) of ``method``'s tuning runs: {"lr", "step", "dev_loss", "per_task", "run"}; refuses a
    grid that is not complete (a missing run or checkpoint), since the choice must see the whole budget, and sees
    only the grid's lrs (a run at any other lr is not part of the budget)."""
    found = [r for r in records if stage_of(r) == "tune" and r["method"] == method]
    runs = {lr: next((r for r in found if math.isclose(r["train"]["lr"], lr, rel_tol=1e-9)), None)
            for lr in grid(protocol, method)}
    missing = [lr for lr, record in runs.items() if record is None]
    if missing:
        raise ConfigError(f"tuning of {method} is incomplete: no results file for lr {missing}; run "
                          f"`python scripts/protocol.py stage=tune` first.")
    out = []
    for lr, record in runs.items():
        curve = {p["step"]: p for p in record["train"].get("dev_curve") or []}
        for step in protocol["checkpoints"]:
            if step not in curve:
                raise ConfigError(f"tuning run {record['run_id']} has no dev point at step {step}; rerun it.")
            out.append({"lr": lr, "step": step, "dev_loss": curve[step]["loss"],
                        "per_task": curve[step]["per_task"], "run": record["run_id"]})
    return out


def choose(protocol: dict, records: list[dict], methods: list[str]) -> dict[str, dict]:
    """Per method, the (lr, checkpoint) the objective picks from its tuning runs: the lowest dev loss; within
    ``objective.tie`` of it, the smaller lr, then the earlier step. ``edge``: the lr is the grid's first or last."""
    out = {}
    for method in methods:
        cands = [c for c in candidates(protocol, records, method) if math.isfinite(c["dev_loss"])]
        if not cands:
            raise ConfigError(f"every tuning run of {method} has a non-finite dev loss: nothing to choose")
        best = min(c["dev_loss"] for c in cands)
        tied = [c for c in cands if c["dev_loss"] <= best + protocol["objective"]["tie"]]
        pick = min(tied, key=lambda c: (c["lr"], c["step"]))
        lrs = grid(protocol, method)
        out[method] = {**pick, "edge": math.isclose(pick["lr"], lrs[0]) or math.isclose(pick["lr"], lrs[-1]),
                       "candidates": len(cands)}
    return out


def made_under_protocol(record: dict) -> bool:
    """A run made under the fair protocol records its dev loss (``train.dev_curve``); the runs made before it, under
    the mini protocol of one shared lr and a fixed step budget, do not."""
    return bool((record.get("train") or {}).get("dev_curve"))


def runs_dir(protocol: dict) -> Path:
    """Where the protocol's results files are: the pilot's and the regenerated tables' runs."""
    return Path(protocol["pilot"]["results_dir"]) / "runs"


OUTPUT_ROOT = "runs/protocol"  # the protocol runs' adapters, checkpoints and logs


def filed_overrides(protocol: dict) -> list[str]:
    """The overrides that file a protocol run's results in ``runs_dir`` and its adapters under ``OUTPUT_ROOT``."""
    return [f"results_dir={runs_dir(protocol)}", f"output_root={OUTPUT_ROOT}"]


def load_records(protocol: dict) -> list[dict]:
    """Every results record of the protocol's runs directory: the pilot's (tuning, final, A/A, horizon and base runs)
    and the regenerated tables'."""
    return [json.loads(p.read_text()) for p in record_files(runs_dir(protocol))]


_PILOT_TAG = re.compile(r"_(tune_lr[^_]+_s\d+|final_s\d+|aa_s\d+|horizon_\d+_lr[^_]+_s\d+|protocol)")


def pilot_records(protocol: dict, records: list[dict]) -> list[dict]:
    """The pilot's own runs among ``records``: its experiment, and a run tag without an arm of its own (a regenerated
    table's ablation arm, e.g. ``_final_s1_norb`` of ID-LoRA, is a final run of ID-LoRA but not the pilot's)."""
    return [r for r in records if r.get("experiment") == protocol["pilot"]["experiment"]
            and _PILOT_TAG.fullmatch(r["config"].get("run_tag", ""))]
