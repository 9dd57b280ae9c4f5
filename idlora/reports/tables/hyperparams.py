"""Tables 4 and 5: the hyperparameters, printed from the experiment configs themselves (so they cannot drift
from what runs). At paper scale every cell must equal the paper's; at another scale the table shows what
that scale actually runs (ranks and budgets differ by design, see configs/scale/)."""

from __future__ import annotations

from ... import protocol as fair
from ...config import compose, effective_lr
from ...errors import ConfigError
from .render import Table, paper_numbers

ROWS = {
    "table4": {"gsm8k_llama3": "gsm8k_llama3", "gsm8k_mistral": "gsm8k_mistral", "codealpaca_llama3": "code_llama3",
               "codealpaca_mistral": "code_mistral", "saferpaca_llama3": "safety_llama3",
               "saferpaca_mistral": "safety_mistral"},
    "table5": {"multitask_llama3": "multitask_llama3", "multitask_mistral": "multitask_mistral"},
}
COLUMNS = ["r", "alpha", "lr", "dropout", "optimizer", "batch_size", "warmup_steps", "epochs"]


def config_values(experiment: str, scale: str) -> dict:
    cfg = compose([f"experiment={experiment}", f"scale={scale}", "method=idlora"])
    return {"r": cfg.method.r, "alpha": cfg.method.alpha, "lr": effective_lr(cfg), "dropout": cfg.method.dropout,
            "optimizer": {"adamw": "AdamW"}.get(cfg.train.optimizer, cfg.train.optimizer),
            "batch_size": cfg.train.batch_size, "warmup_steps": cfg.train.warmup_steps,
            "epochs": cfg.train.epochs if not cfg.train.max_steps else f"{cfg.train.max_steps} steps"}


def _task(experiment: str) -> str:
    """``multitask_llama3`` -> ``multitask``: at mini both paper models map to SmolLM2, so one tuning serves both."""
    return experiment.rsplit("_", 1)[0]


def tuned_values(scale: str) -> tuple[str, dict] | None:
    """(the task tuned, ID-LoRA's lr, warm-up and steps there) as the fair protocol's tuning chose them
    (``idlora.protocol.choose`` on the tuning runs' files), or None: not at ``scale``, or the tuning incomplete."""
    if scale != "mini":
        return None
    protocol = fair.load_protocol()
    try:
        pick = fair.choose(protocol, fair.load_records(protocol), ["idlora"])["idlora"]
    except ConfigError:  # tuning incomplete: the table prints the config and says so
        return None
    return _task(protocol["pilot"]["experiment"]), {
        "lr": pick["lr"], "warmup_steps": protocol["schedule"]["warmup_steps"],
        "epochs": f"{pick['step']} steps (of {protocol['schedule']['horizon']})"}


def build(name: str, scale: str) -> Table:
    paper = paper_numbers()[name]
    table = Table(name=name, title=paper["title"], scale=scale, rows=list(ROWS[name]), columns=COLUMNS,
                  fmt=lambda v: f"{v:g}" if isinstance(v, float) else str(v))
    tuned, tuned_rows = tuned_values(scale), []
    for row, experiment in ROWS[name].items():
        values = config_values(experiment, scale)
        if tuned and _task(experiment) == tuned[0]:
            values.update(tuned[1])
            tuned_rows.append(row)
        for col in COLUMNS:
            table.add(row, col, values[col], paper=paper["rows"][row][col], runs=[f"configs/experiment/{experiment}.yaml"])
    table.notes.append(f"Read from configs/experiment/*.yaml composed at scale `{scale}` with method=idlora "
                       "(targets q,k,v,o,gate,up,down; k=4).")
    if tuned_rows:
        table.notes.append(f"lr, warmup_steps and steps of {', '.join(tuned_rows)}: ID-LoRA's (lr, checkpoint) chosen on "
                           "dev by the fair protocol's tuning (4 lrs, the same budget as every method; "
                           "results/protocol/pilot/tuning.md); the other cells from the configs.")
    elif scale == "mini":
        table.notes.append("Not yet tuned under the fair protocol (docs/protocol.md): the lr is the scale's config "
                           "(configs/scale/mini.yaml), the one the tables' current runs trained at.")
    if scale != "paper":
        table.notes.append(f"Scale `{scale}` changes ranks, batch and budget on purpose (configs/scale/{scale}.yaml); "
                           "run `make " + name + " SCALE=paper` for the paper's values.")
    return table
