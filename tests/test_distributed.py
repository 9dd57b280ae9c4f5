"""DeepSpeed ZeRO-2 and ZeRO-3 with two CPU processes (gloo) through `accelerate launch` with the shipped accelerate
files as written (no flag overrides what they say): a step completes and the adapter is saved, for ID-LoRA and LoRA
(adapters under ZeRO-3 too, which the paper-scale tests do not launch)."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).parents[1]


@pytest.mark.slow
@pytest.mark.parametrize("stage", [2, 3])
@pytest.mark.parametrize("method", ["idlora", "lora"])
def test_deepspeed_two_cpu_processes(stage, method, tmp_path):
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
           str(REPO / f"configs/accelerate/zero{stage}.yaml"), str(REPO / "scripts/train.py"), "experiment=gsm8k_llama3",
           "scale=tiny",
           f"method={method}", "train.wandb=false", "train.max_steps=2", f"output_root={tmp_path}/runs",
           f"results_dir={tmp_path}/results"]
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    adapter = tmp_path / "runs" / f"gsm8k_llama3.tiny.{method}" / "adapter" / "adapter_model.safetensors"
    assert adapter.exists()
    assert (tmp_path / "results" / f"gsm8k_llama3.tiny.{method}.json").exists()
