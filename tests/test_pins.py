"""The installed libraries are the combination pyproject.toml pins (the one tests/test_clients.py checks works,
transformers' adapter API included), and environment.yml installs the same."""

import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PINNED = ("transformers", "peft", "accelerate", "lm-eval", "deepspeed", "trl")


def _requirements() -> dict[str, Requirement]:
    project = PYPROJECT["project"]
    reqs = [*project["dependencies"], *(r for extra in project["optional-dependencies"].values() for r in extra)]
    return {Requirement(r).name: Requirement(r) for r in reqs}


@pytest.mark.parametrize("name", PINNED)
def test_installed_version_is_the_pinned_one(name):
    req = _requirements()[name]
    assert any(s.operator in ("<", "<=", "==", "~=") for s in req.specifier), (
        f"pyproject.toml gives {name} no upper bound ({req}): a newer release can break the tested combination")
    try:
        installed = version(name)
    except PackageNotFoundError:
        pytest.skip(f"{name} is an optional extra that is not installed")  # the core four are always installed
    assert req.specifier.contains(installed, prereleases=True), (
        f"{name} {installed} is installed but pyproject.toml pins {req}; run `make install` (pip install -e .)")


def test_transformers_adapter_api_accepts_the_pinned_peft():
    from packaging.version import Version
    from transformers.integrations import peft as tf_peft

    assert Version(version("peft")) >= Version(tf_peft.MIN_PEFT_VERSION), (
        f"transformers {version('transformers')} needs peft >= {tf_peft.MIN_PEFT_VERSION} for its adapter API")


def test_environment_yml_installs_this_project_with_its_extras():
    lines = [line.strip().removeprefix("- ").strip() for line in (ROOT / "environment.yml").read_text().splitlines()]
    install = next(line for line in lines if line.startswith("-e ."))
    extras = install.split("[", 1)[1].rstrip("]").split(",")
    assert set(extras) == set(PYPROJECT["project"]["optional-dependencies"])
    torch_pin = next(line for line in lines if line.startswith("torch=="))
    assert _requirements()["torch"].specifier.contains(torch_pin.split("==")[1])
