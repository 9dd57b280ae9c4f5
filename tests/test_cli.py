"""Every entry point in scripts/ takes one argument style (key=value; train.py and pmrc.py: Hydra overrides) and
answers --help with its usage, exit status 0; a flag of the old style is refused with the valid keys."""

import subprocess
import sys
from pathlib import Path

import pytest

from idlora.cli import parse_overrides
from idlora.errors import ConfigError

SCRIPTS = sorted((Path(__file__).parents[1] / "scripts").glob("*.py"))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_every_script_answers_help(script):
    res = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-500:]
    doc = res.stdout.strip()
    assert len(doc) > 40 and "Traceback" not in res.stderr
    if script.stem not in ("train", "pmrc"):  # Hydra prints its own help
        first = [ln for ln in script.read_text().splitlines() if ln.strip()][0].strip('"')
        assert doc.startswith(first[:40])


def test_old_style_flags_are_refused_with_the_valid_keys():
    with pytest.raises(ConfigError, match="valid keys: quick, table"):
        parse_overrides(["--quick"], {"quick": ("true", "false"), "table": ("true", "false")})
