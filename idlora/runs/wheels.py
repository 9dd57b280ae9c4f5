"""Wheels for ``make gpu-check`` on a machine without a package index (``make wheels``).

The GPU machine is assumed to have torch and accelerate (and their own dependencies); the check also needs
``ROOTS`` and everything they require that torch and accelerate do not already bring. The list is the closure of
their requirements as installed here (``importlib.metadata``), each pinned to the version installed here, so the
machine gets the versions the tests ran with. Platform wheels are fetched for CPython ``python_version`` on
manylinux x86_64.
"""

from __future__ import annotations

import re
from importlib import metadata

ROOTS = ("peft", "transformers", "hydra-core", "omegaconf", "k-means-constrained", "tqdm", "filelock", "safetensors")
PROVIDED = ("torch", "accelerate")  # on the machine, with what they require
# Left out to stay under the 64 MiB that travels to the machine: pandas (12 MB; ortools declares it, the min-cost flow
# PMRC uses does not import it) and scipy (34 MB; only k-means-constrained, the reference of the objective check,
# needs it: without it that one item is skipped with the reason recorded). ``make wheels WHEELS_ALL=1`` keeps them.
EXCLUDE = ("pandas", "scipy")
SDIST_ONLY = ("antlr4-python3-runtime",)  # no wheel on PyPI (pure Python): built here with ``pip wheel``
PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_27_x86_64", "manylinux_2_28_x86_64",
             "manylinux_2_34_x86_64", "linux_x86_64")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requires(name: str) -> list[str]:
    out = []
    for req in metadata.requires(name) or []:
        if "extra ==" in req:
            continue
        if ";" in req and "python_version" not in req and "platform_system" not in req and "sys_platform" not in req:
            continue
        out.append(_norm(re.split(r"[ ;<>=!~\[(]", req, maxsplit=1)[0]))
    return out


def closure(roots) -> set[str]:
    """The installed distributions ``roots`` need, recursively (extras and markers other than the platform's not
    followed)."""
    seen, todo = set(), [_norm(r) for r in roots]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        try:
            metadata.version(name)
        except metadata.PackageNotFoundError:
            continue  # a requirement for another platform or Python
        seen.add(name)
        todo.extend(_requires(name))
    return seen


def wheel_pins(keep_all: bool = False) -> list[str]:
    """``name==version`` of every distribution to download."""
    need = closure(ROOTS) - closure(PROVIDED) - (set() if keep_all else set(EXCLUDE))
    return sorted(f"{n}=={metadata.version(n)}" for n in need)


def pip_commands(dest: str, python_version: str, keep_all: bool = False) -> list[list[str]]:
    """The pip argument lists: binary wheels for the target Python and platform, then the sdist-only ones built."""
    pins = wheel_pins(keep_all)
    binary = [p for p in pins if p.split("==")[0] not in SDIST_ONLY]
    args = ["download", "--no-deps", "--only-binary=:all:", "--dest", dest, "--python-version", python_version,
            "--implementation", "cp"]
    for p in PLATFORMS:
        args += ["--platform", p]
    built = [p for p in pins if p.split("==")[0] in SDIST_ONLY]
    return [args + binary] + ([["wheel", "--no-deps", "-w", dest, *built]] if built else [])
