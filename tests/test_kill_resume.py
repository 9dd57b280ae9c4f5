"""A training run killed with SIGKILL at random moments, once while writing a checkpoint, resumes with
``train.resume=true`` and ends with the same adapter, loss curve and results as an uninterrupted run."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from idlora.training.checkpoint import FAULT_ENV

REPO = Path(__file__).parents[1]
RUN_ID = "gsm8k_llama3.tiny.idlora"


def _cmd(root: Path, *extra: str) -> list[str]:
    return [sys.executable, str(REPO / "scripts/train.py"), "experiment=gsm8k_llama3", "scale=tiny",
            "train.max_steps=10", "train.save_steps=2", "train.lr=1e-3", "train.wandb=false",
            f"output_root={root}/runs", f"results_dir={root}/results", *extra]


def _env(**extra) -> dict:
    env = dict(os.environ)
    env.pop(FAULT_ENV, None)
    env.update(extra)
    return env


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume_is_bit_identical(tmp_path):
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    subprocess.run(_cmd(ref), env=_env(), cwd=REPO, check=True, capture_output=True)

    # 1. killed while checkpoint 4 is half written: a torn step-4.tmp is left behind
    p = subprocess.run(_cmd(killed), env=_env(**{FAULT_ENV: "4"}), cwd=REPO, capture_output=True)
    assert p.returncode == -signal.SIGKILL
    ckpts = killed / "runs" / RUN_ID / "checkpoints"
    assert (ckpts / "step-4.tmp").is_dir() and not (ckpts / "step-4").exists()
    assert (ckpts / "step-2" / "meta.json").exists()

    # 2. resumed and killed again at random moments (seeded, so a failure can be replayed)
    rng = random.Random(int(os.environ.get("IDLORA_KILL_SEED", "0")))
    for _ in range(2):
        proc = subprocess.Popen(_cmd(killed, "train.resume=true"), env=_env(), cwd=REPO,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(4.0, 12.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    # 3. the final resume finishes the run
    done = subprocess.run(_cmd(killed, "train.resume=true"), env=_env(), cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert not list(ckpts.glob("*.tmp*"))  # the torn checkpoint was removed, never loaded

    a = json.loads((ref / "results" / f"{RUN_ID}.json").read_text())
    b = json.loads((killed / "results" / f"{RUN_ID}.json").read_text())
    assert b["train"]["loss_curve"] == a["train"]["loss_curve"]
    assert b["metrics"] == a["metrics"] and a["metrics"]
    wa = load_file(ref / "runs" / RUN_ID / "adapter" / "adapter_model.safetensors")
    wb = load_file(killed / "runs" / RUN_ID / "adapter" / "adapter_model.safetensors")
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k
