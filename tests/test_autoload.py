"""A fresh process that never imports ``idlora`` loads its adapters with plain PEFT (idlora_autoload.pth, installed
with the package, wheel or editable); ``IDLORA_NO_AUTOLOAD=1`` turns that off and PEFT's error then names
``import idlora``; the wheel and the editable wheel both carry the .pth."""

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

import idlora_autoload
from idlora import IDLoRAConfig
from idlora.models.tiny import tiny_llama
from idlora.tuners._registry import ExtraPeftType, register
from idlora.tuners.idlora import IDLoRAModel

from test_peft_matrix import METHODS, TOKENS, saved_adapter

ROOT = Path(__file__).resolve().parents[1]
NOT_INSTALLED = ("idlora_autoload.pth is not active in this environment ({prefix}): reinstall the package "
                 "(`make install`, or `pip install -e .`) so that site-packages has it")

# Run in a fresh interpreter: never imports idlora; prints what it saw as JSON.
LOAD_WITHOUT_IMPORT = r"""
import json, sys
seen = {"hook": any(type(f).__name__ == "_PeftFinder" for f in sys.meta_path),
        "at_start": sorted({"torch", "peft", "idlora"} & set(sys.modules))}
if not seen["hook"]:
    sys.exit(print(json.dumps(seen)))
import torch
from transformers import AutoModelForCausalLM
base, tokens, out, *adapters = sys.argv[1:]
tokens = torch.load(tokens)

def run(model):
    with torch.no_grad():
        return model.eval()(tokens).logits.float()

model = AutoModelForCausalLM.from_pretrained(base)
model.load_adapter(adapters[0])  # transformers' adapter API: it imports PEFT itself
logits = {"transformers": run(model)}
from peft import AutoPeftModelForCausalLM, PeftConfig, PeftModel
logits["auto"] = run(AutoPeftModelForCausalLM.from_pretrained(adapters[0]))
seen["configs"] = [type(PeftConfig.from_pretrained(a)).__name__ for a in adapters]
for a in adapters:
    logits[a] = run(PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), a))
torch.save(logits, out)
print(json.dumps(seen))
"""

OPTED_OUT = r"""
import sys
print("HOOK:", any(type(f).__name__ == "_PeftFinder" for f in sys.meta_path))
from peft import PeftConfig, PeftModel
from transformers import AutoModelForCausalLM
base, adapter = sys.argv[1:]
for load in (lambda: PeftConfig.from_pretrained(adapter),
             lambda: PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), adapter)):
    try:
        load()
        print("LOADED")
    except KeyError as exc:
        print(f"{type(exc).__name__}: {exc}")
import idlora  # the stand-ins give way to the real methods
print("AFTER IMPORT:", type(PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), adapter)).__name__)
"""


def _run(code: str, cwd: Path, *args, **env) -> subprocess.CompletedProcess:
    """``code`` in a fresh interpreter, from ``cwd`` (not the repository: what it imports comes from site-packages)."""
    environ = {k: v for k, v in os.environ.items() if k != idlora_autoload.OPT_OUT}
    proc = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                          env={**environ, **env}, cwd=cwd, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("base")
    tiny_llama().save_pretrained(path)
    return path


def test_peft_types_are_the_registrys():
    assert idlora_autoload.PEFT_TYPES == tuple(member.value for member in ExtraPeftType)


def test_fresh_process_loads_every_method_without_import_idlora(tmp_path, base_dir, counted_clustering):
    expected = {str(tmp_path / m): saved_adapter(m, tmp_path / m, base_dir=base_dir) for m in METHODS}
    torch.save(TOKENS, tmp_path / "tokens.pt")
    # run from tmp_path, where the adapters are the folders idlora/, lori/...: the hook must import the package, not
    # the folder idlora/ as a namespace package (which is what `import idlora` there gives an editable install)
    proc = _run(LOAD_WITHOUT_IMPORT, tmp_path, base_dir, tmp_path / "tokens.pt", tmp_path / "out.pt", *expected)
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen["hook"], NOT_INSTALLED.format(prefix=sys.prefix)
    assert seen["at_start"] == []  # the .pth imports neither torch, nor PEFT, nor idlora at start-up
    assert seen["configs"] == ["IDLoRAConfig", "HydraLoRAConfig", "MoELoRAConfig", "LoRIConfig"]
    got = torch.load(tmp_path / "out.pt")
    expected["transformers"] = expected["auto"] = expected[str(tmp_path / "idlora")]  # ID-LoRA's, loaded 2 more ways
    assert got.keys() == expected.keys()
    for adapter, logits in expected.items():
        torch.testing.assert_close(got[adapter], logits, rtol=0, atol=0, msg=adapter)


def test_opt_out_leaves_a_message_that_names_import_idlora(tmp_path, base_dir, counted_clustering):
    saved_adapter("idlora", tmp_path / "a", base_dir=base_dir)
    lines = _run(OPTED_OUT, tmp_path, base_dir, tmp_path / "a", IDLORA_NO_AUTOLOAD="1").stdout.strip().splitlines()
    assert lines.pop(0) == "HOOK: True", NOT_INSTALLED.format(prefix=sys.prefix)
    for line in lines[:2]:  # PeftConfig.from_pretrained, then PeftModel.from_pretrained
        assert line.startswith("AdapterTypeNotLoaded: This adapter's peft_type 'IDLORA' is a method of the idlora")
        assert "`import idlora` before loading it (IDLORA_NO_AUTOLOAD is set" in line and "idlora.lm_eval" in line
    assert lines[2] == "AFTER IMPORT: PeftModel"


def test_a_failed_automatic_import_warns_and_names_import_idlora(monkeypatch):
    import peft.mapping

    for name in ("CONFIG", "TUNER", "PREFIX"):
        monkeypatch.setattr(peft.mapping, f"PEFT_TYPE_TO_{name}_MAPPING", {})
    monkeypatch.setitem(sys.modules, "idlora", None)  # `import idlora` now raises ImportError
    with pytest.warns(RuntimeWarning, match="could not register idlora's PEFT methods .*`import idlora`"):
        idlora_autoload._import_idlora()
    stand_in = peft.mapping.PEFT_TYPE_TO_CONFIG_MAPPING["IDLORA"]
    assert stand_in.idlora_stand_in and not hasattr(stand_in, "_private")  # a probe is no error
    for use in (lambda: stand_in.from_pretrained("dir"), lambda: stand_in(r=8), lambda: stand_in.from_peft_type()):
        with pytest.raises(KeyError, match=r"`import idlora` before loading it \(importing it automatically failed"):
            use()
    register(ExtraPeftType.IDLORA, IDLoRAConfig, IDLoRAModel, prefix="idlora_")  # what `import idlora` does
    assert peft.mapping.PEFT_TYPE_TO_CONFIG_MAPPING["IDLORA"] is IDLoRAConfig
    assert [type(k) for k in peft.mapping.PEFT_TYPE_TO_CONFIG_MAPPING if k == "IDLORA"] == [ExtraPeftType]


def _copy_project(dest: Path) -> Path:
    for name in ("pyproject.toml", "README.md", "MANIFEST.in", "_build_autoload.py", "idlora_autoload.py",
                 "idlora_autoload.pth"):
        shutil.copy(ROOT / name, dest / name)
    shutil.copytree(ROOT / "idlora", dest / "idlora", ignore=shutil.ignore_patterns("__pycache__"))
    return dest


BUILD = "import sys; from setuptools import build_meta as b; print(getattr(b, sys.argv[1])(sys.argv[2]))"


@pytest.mark.parametrize("hook", ["build_wheel", "build_editable"])
def test_wheel_and_editable_wheel_put_the_pth_in_site_packages(tmp_path, hook):
    pytest.importorskip("setuptools", reason="builds with this environment's setuptools (no download)")
    project = _copy_project(tmp_path)
    proc = subprocess.run([sys.executable, "-c", BUILD, hook, str(tmp_path / "dist")], capture_output=True,
                          text=True, cwd=project, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with zipfile.ZipFile(tmp_path / "dist" / proc.stdout.strip().splitlines()[-1]) as wheel:
        names = wheel.namelist()
        assert wheel.read("idlora_autoload.pth") == (ROOT / "idlora_autoload.pth").read_bytes()
    assert "_build_autoload.py" not in names
    if hook == "build_wheel":
        assert {"idlora_autoload.py", "idlora/__init__.py"} <= set(names)
    else:  # the sources stay in the project; setuptools' own .pth and finder map idlora and idlora_autoload there
        assert any(n.startswith("__editable__") and n.endswith(".pth") for n in names)
