"""The README is a quick start: every command in its code blocks names a real make target (with real make
variables), a real script or module, and real config groups and keys, composed with the repository's own config
files; it is at most 220 lines of at most 120 characters; it holds no measured number (those live in generated
files, which it links); and every relative link of the README and docs/ resolves, anchors included."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
MAX_LINES, MAX_WIDTH = 220, 120
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
HYDRA_SCRIPTS = {"scripts/train.py", "scripts/pmrc.py"}  # Hydra overrides only
LAUNCH_SCRIPTS = {"scripts/submit.py", "scripts/make_table.py"}  # own keys, slurm.<option>, Hydra overrides

# A measured number: a quantity with a unit of time, size, share or speed; a date; an interval; a ratio given to
# three decimals; a ± spread. Config facts (r=128, k=4, table1, Python's version) match none of these.
MEASURED = [
    re.compile(r"(?<![\w.])[-+~≈]?\d[\d,]*(?:\.\d+)?\s?(?:µs|ms|s|sec|seconds?|min|minutes?|h|hours?|%|×|x|"
               r"[KMG]i?B|tokens/s|GFLOP/s)(?![\w/])"),
    re.compile(r"\b20\d\d-\d\d-\d\d\b"),
    re.compile(r"\[\s*[-+−]?\d+(?:\.\d+)?\s*,\s*[-+−]?\d+(?:\.\d+)?\s*\]"),
    re.compile(r"(?<![\w.])\d+\.\d{3,}(?![\w.])"),
    re.compile(r"±\s?\d"),
]


def measured_numbers(markdown: str) -> list[str]:
    """The measured-looking numbers of a markdown text outside code: prose with inline code removed, and the
    comments of its code blocks."""
    prose = FENCE.sub("", markdown)
    comments = [ln.split(" #", 1)[1] for _, body in FENCE.findall(markdown) for ln in body.splitlines() if " #" in ln]
    text = re.sub(r"`[^`\n]*`", "", "\n".join([prose, *comments]))
    return [m.group(0) for pattern in MEASURED for m in pattern.finditer(text)]


def commands(markdown: str) -> list[list[str]]:
    """Each command of the bash code blocks, continuation lines joined, comments dropped."""
    out = []
    for lang, body in FENCE.findall(markdown):
        if lang == "bash":
            out += [argv for line in body.replace("\\\n", " ").splitlines()
                    if (argv := shlex.split(line, comments=True))]
    return out


def makefile() -> tuple[set[str], set[str]]:
    """The Makefile's explicit targets (its variables expanded) and its variable names."""
    text = (REPO / "Makefile").read_text()
    variables = dict(re.findall(r"^([A-Z_]+)\s*[:?]?=\s*([^#\n]*)", text, re.MULTILINE))
    targets = set()
    for names in re.findall(r"^([^\t#\s][^:=\n]*?):(?!=)", text, re.MULTILINE):
        for name in re.sub(r"\$\((\w+)\)", lambda m: variables.get(m.group(1), ""), names).split():
            if "%" not in name and not name.startswith((".", "$")):
                targets.add(name)
    return targets, set(variables)


def compose(overrides: list[str]):
    from idlora.config import compose as compose_config

    return compose_config(overrides)


def check_overrides(overrides: list[str], where: str) -> None:
    """Hydra overrides: a config group's value is one of its files, the whole list composes, and the method takes
    every key it is given (the check scripts/train.py makes before any model is loaded: a key a method file lacks
    composes as an addition and is refused by the method's own config)."""
    for arg in overrides:
        key, _, value = arg.lstrip("+").partition("=")
        if (REPO / "configs" / key).is_dir():
            assert (REPO / "configs" / key / f"{value}.yaml").is_file(), f"{where}: no configs/{key}/{value}.yaml"
    from idlora.methods import BASE, build_peft_config

    cfg = compose(overrides)
    if cfg.method.name != BASE:
        build_peft_config(cfg.method)


def check_own_keys(script: Path, args: list[str]) -> None:
    """A script's own key=value arguments are keys it declares; a run id names a committed run."""
    source = script.read_text()
    for arg in args:
        key, _, value = arg.partition("=")
        assert f'"{key}"' in source, f"{script.name} takes no {key}="
        if key == "run":
            assert (REPO / "results/runs" / f"{value}.json").is_file(), f"no results/runs/{value}.json"


def check_launcher(script: str, args: list[str]) -> None:
    from idlora.runs.launch import SLURM_DEFAULTS

    own = [a for a in args if a.split("=")[0] in ("experiment", "methods", "scale", "dry_run", "table", "jobs",
                                                    "cluster")]
    slurm = [a.split("=")[0][len("slurm."):] for a in args if a.startswith("slurm.")]
    assert set(slurm) <= set(SLURM_DEFAULTS), f"unknown sbatch options {set(slurm) - set(SLURM_DEFAULTS)}"
    check_own_keys(REPO / script, own)
    given = dict(a.split("=", 1) for a in own)
    rest = [a for a in args if a not in own and not a.startswith("slurm.")]
    base = [f"experiment={given.get('experiment', 'multitask_llama3')}", f"scale={given.get('scale', 'mini')}"]
    for method in given.get("methods", "idlora").split(","):
        check_overrides([*base, f"method={method}", *rest], script)


def check_make(argv: list[str]) -> None:
    targets, variables = makefile()
    assignments = dict(a.split("=", 1) for a in argv[1:] if "=" in a)
    for name in (a for a in argv[1:] if "=" not in a):
        assert name in targets, f"make {name}: no such target in the Makefile"
    for var, value in assignments.items():
        assert var in variables, f"make {var}=...: the Makefile has no variable {var}"
    scale = assignments.get("SCALE", "mini")
    assert (REPO / "configs/scale" / f"{scale}.yaml").is_file(), f"SCALE={scale}: no such scale"
    if "MODEL" in assignments:
        assert (REPO / "configs/model" / f"{assignments['MODEL']}.yaml").is_file()
    if "RUN" in assignments:
        assert (REPO / "results/runs" / f"{assignments['RUN']}.json").is_file(), f"RUN: no such run"
    if "ARGS" in assignments:
        check_launcher("scripts/make_table.py", [f"scale={scale}", *shlex.split(assignments["ARGS"])])


def check_python(argv: list[str]) -> None:
    if argv[1] == "-m":
        module = REPO / Path(*argv[2].split("."))
        assert module.with_suffix(".py").is_file() or (module / "__main__.py").is_file(), f"no module {argv[2]}"
        return
    script, args = argv[1], [a for a in argv[2:] if a not in ("--cfg", "job")]
    assert (REPO / script).is_file(), f"no script {script}"
    if script in HYDRA_SCRIPTS:
        check_overrides(args, script)
    elif script in LAUNCH_SCRIPTS:
        check_launcher(script, args)
    else:
        check_own_keys(REPO / script, args)


def check_accelerate(argv: list[str]) -> None:
    assert argv[1] == "launch" and argv[2] == "--config_file", argv
    assert (REPO / argv[3]).is_file(), f"no accelerate file {argv[3]}"
    check_python(["python", *argv[4:]])


CHECKS = {"make": check_make, "python": check_python, "accelerate": check_accelerate}


def test_readme_has_commands_of_every_kind():
    kinds = {argv[0] for argv in commands(README.read_text())}
    assert kinds == set(CHECKS), kinds
    assert ["make", "test"] in commands(README.read_text())  # the test command .ci/run calls


@pytest.mark.parametrize("argv", commands(README.read_text()), ids=lambda a: " ".join(a)[:60])
def test_every_readme_command_names_real_targets_scripts_and_configs(argv):
    CHECKS[argv[0]](argv)


@pytest.mark.parametrize("argv, message", [
    (["make", "table9"], "no such target"), (["make", "table1", "SCAEL=paper"], "no variable"),
    (["python", "scripts/trian.py"], "no script"), (["python", "scripts/evaluate.py", "runs=x"], "takes no runs="),
    (["python", "scripts/train.py", "experiment=multitask_llama4"], "multitask_llama4"),
    (["python", "-m", "idlora.lm_evl"], "no module"),
    (["make", "table1", "CLUSTER=slurm", "ARGS=slurm.partiton=gpu"], "unknown sbatch options"),
])
def test_the_command_check_refuses_what_does_not_exist(argv, message):
    with pytest.raises(Exception, match=message):
        CHECKS[argv[0]](argv)


def test_a_misspelt_config_key_is_refused():
    with pytest.raises(Exception):
        check_python(["python", "scripts/train.py", "experiment=multitask_llama3", "method.rnak=8"])


def test_readme_is_a_quick_start():
    lines = README.read_text().splitlines()
    assert len(lines) <= MAX_LINES, f"README.md has {len(lines)} lines (at most {MAX_LINES})"
    wide = [i + 1 for i, ln in enumerate(lines) if len(ln) > MAX_WIDTH]
    assert not wide, f"README.md lines over {MAX_WIDTH} characters: {wide}"


def test_readme_holds_no_measured_number():
    found = measured_numbers(README.read_text())
    assert not found, f"measured numbers in README.md (they belong in a generated file): {found}"


@pytest.mark.parametrize("text", [
    "a run trains 16 steps in 78–274 s (median 147)", "The 33 runs took 13,644 s (~114 min of wall time)",
    "ID-LoRA 1.021 [1.012, 1.031], n=40", "measured 2026-12-03 on this 2-core machine", "own overhead +3.1%",
    "**LLaMA-3-8B's 224 matrices in 91 s** on 2 cores", "decoding 0.15× HydraLoRA's", "54 MiB for CPython",
    "GSM8K 31.1 ±6.4", "```bash\nmake test   # a few minutes: 4 min on 2 cores\n```",
])
def test_the_rule_finds_measurements(text):
    assert measured_numbers(text)


@pytest.mark.parametrize("text", [
    "ID-LoRA r=128 with k=4; LoRA r=32", "make table1 … table8", "only Python 3.11", "Tables 1–8 and Table 6",
    "`results/runs/<run_id>.json`, `--signal=B:USR1@300`", "```bash\nmake bench   # results/bench/efficiency.json\n```",
])
def test_the_rule_passes_config_facts(text):
    assert not measured_numbers(text)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    return {slug(h) for h in re.findall(r"^#{1,6} (.+)$", text, re.MULTILINE)}


PAGES = [README, *sorted((REPO / "docs").glob("*.md")), REPO / "results/README.md"]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_relative_link_resolves(page):
    bad = []
    for target in re.findall(r"\]\(([^)\s]+)\)", FENCE.sub("", page.read_text(encoding="utf-8"))):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            bad.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            bad.append(f"{target}: no heading with that anchor")
    assert not bad, f"{page.name}: " + "; ".join(bad)


def test_readme_links_the_generated_results():
    text = README.read_text()
    for generated in ("results/CLAIMS.md", "results/README.md", "results/tables/", "results/pilot/real_data.md"):
        assert f"]({generated})" in text, f"README.md does not link {generated}"
