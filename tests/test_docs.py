"""The design lives in the repository: no file points outside it, and every "DESIGN.md §N" citation resolves.

Citations of the form ``DESIGN.md §N`` (also ``§N–M`` ranges, and ``\\u00a7N`` as JSON writes the sign) appear in
code, configs, the README and the committed generated tables; each must name a section ``## N.`` of
``docs/DESIGN.md``. Generated files under ``results/`` are checked for citations but not for paths.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DESIGN = REPO / "docs" / "DESIGN.md"
# spelled in pieces so that this file does not match itself
OUTSIDE_PATHS = (".." + "/shared", "/work" + "/shared")
CITATION = re.compile(r"DESIGN\.md\W{0,3}(?:§|\\u00a7)\s*(\d+)(?:\s*[–-]\s*(\d+))?")
SKIP_DIRS = {".git", ".venv", "__pycache__", ".pytest_cache", "runs", "wheels", "outputs", "multirun", "wandb",
             ".cache", ".locks"}


def repo_files() -> list[str]:
    """Paths (relative, POSIX) of the files git tracks or would track; a plain walk where git is unavailable."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                             capture_output=True, check=True, timeout=60).stdout
        return sorted({p for p in out.decode().split("\0") if p and (REPO / p).is_file()})
    except (OSError, subprocess.SubprocessError):
        files = []
        for path in REPO.rglob("*"):
            rel = path.relative_to(REPO)
            if path.is_file() and not (set(rel.parts[:-1]) & SKIP_DIRS or rel.parts[0] == "runs"):
                files.append(rel.as_posix())
        return sorted(files)


def design_sections() -> set[int]:
    return {int(m.group(1)) for m in re.finditer(r"^## (\d+)\.", DESIGN.read_text(encoding="utf-8"), re.MULTILINE)}


def test_design_doc_has_the_cited_numbering():
    assert DESIGN.exists(), "docs/DESIGN.md is missing"
    assert design_sections() == {1, 2, 3, 4, 5, 6, 7}


def test_no_file_points_outside_the_repository():
    offenders = []
    for rel in repo_files():
        if rel.startswith("results/"):
            continue
        data = (REPO / rel).read_bytes()
        offenders += [f"{rel}: {p}" for p in OUTSIDE_PATHS if p.encode() in data]
    assert not offenders, "files that point outside the repository:\n" + "\n".join(offenders)


def test_every_design_citation_names_an_existing_section():
    sections = design_sections()
    citations, bad = 0, []
    for rel in repo_files():
        text = (REPO / rel).read_bytes().decode("utf-8", errors="ignore")
        for m in CITATION.finditer(text):
            citations += 1
            for group in m.groups():
                if group is not None and int(group) not in sections:
                    line = text.count("\n", 0, m.start()) + 1
                    bad.append(f"{rel}:{line}: {m.group(0)!r}")
    assert citations > 0, "no DESIGN.md citations found: is the pattern still right?"
    assert not bad, "citations of sections docs/DESIGN.md does not have:\n" + "\n".join(bad)


@pytest.mark.parametrize("text, sections", [("DESIGN.md §1", ["1"]), ("docs/DESIGN.md §3.", ["3"]),
                                            ("`DESIGN.md` §1–2", ["1", "2"]), ("DESIGN.md \\u00a71)", ["1"])])
def test_citation_pattern(text, sections):
    m = CITATION.search(text)
    assert m is not None and [g for g in m.groups() if g] == sections


def _readme_section(title: str) -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    return text[start:text.index("\n## ", start + 1)]


def test_readme_peft_section_shows_several_adapters_and_the_lm_eval_command(monkeypatch):
    section = _readme_section("Use it as a PEFT method")
    python = "\n".join(re.findall(r"```python\n(.*?)```", section, re.DOTALL))
    for call in ("load_adapter(", "add_adapter(", "set_adapter(", "delete_adapter(", "adapter_names=["):
        assert call in python, f"the README's PEFT example does not show {call}"
    command = next(b for b in re.findall(r"```bash\n(.*?)```", section, re.DOTALL) if "idlora.lm_eval" in b)
    argv = shlex.split(command.replace("\\\n", " "), comments=True)
    assert argv[:3] == ["python", "-m", "idlora.lm_eval"]
    from lm_eval._cli import HarnessCLI  # the rest is lm-eval's own arguments: its parser takes them

    monkeypatch.setattr(sys, "argv", ["lm_eval", *argv[3:]])
    args = HarnessCLI().parse_args()
    assert args.model == "hf" and "peft" in args.model_args and args.tasks  # model_args: a dict of key=value


def test_every_code_path_the_docs_name_exists():
    """A doc that names ``idlora/…py``, ``scripts/…py`` or ``tests/…py`` names a file that is there (two docs named
    modules under their old paths after a move)."""
    path = re.compile(r"(?<![\w/.])((?:idlora|scripts|tests)/[\w/]+\.py)\b")
    docs = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    named = {doc: sorted(set(path.findall(doc.read_text(encoding="utf-8")))) for doc in docs}
    missing = [f"{doc.relative_to(REPO)}: {p}" for doc, paths in named.items() for p in paths
               if not (REPO / p).is_file()]
    assert not missing, "docs name files that do not exist:\n" + "\n".join(missing)
