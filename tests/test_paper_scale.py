"""The paper-scale path on a CPU, with the shipped files as written: the README's `accelerate launch` (ZeRO-2, two
processes, wandb on, offline), LoRI on ZeRO-2 and full fine-tuning on ZeRO-3, a Slurm job stopped by its warning
signal, requeued and resumed, and `make table_init SCALE=paper` (Table 3's shared runs among its six) with overrides
passed through. The model is a tiny random LLaMA in HF format with a LLaMA-3-style tokenizer without pad token, the
data local files in the hub schemas; only user-level overrides (local copies, a step budget, eval limits) are given,
never one that changes a shipped file."""

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time

import pytest
from safetensors.torch import load_file

from paper_sim import REPO, SMALL, fake_slurm, local_overrides, paper_files

pytestmark = pytest.mark.slow
ACCELERATE = [sys.executable, "-m", "accelerate.commands.launch"]  # what the `accelerate` command runs


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    root = tmp_path_factory.mktemp("paper_sim")
    model, data = paper_files(root)
    return model, data


def readme_command(prefix: str) -> list[str]:
    """The README's command that starts with ``prefix`` (continuation lines joined, comment dropped)."""
    text = (REPO / "README.md").read_text().replace("\\\n", " ")
    for line in text.splitlines():
        if line.strip().startswith(prefix):
            return shlex.split(line.split("#")[0])
    raise AssertionError(f"no README command starting with {prefix!r}")


def _run(cmd, env=None, timeout=900):
    env = {**(env or os.environ), "WANDB_MODE": "offline"}
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def _record(root, run_id):
    return json.loads((root / "results" / f"{run_id}.json").read_text())


def test_readme_paper_launch_runs_as_written(sim, tmp_path):
    model, data = sim
    cmd = readme_command("accelerate launch --config_file configs/accelerate/zero2.yaml")
    assert "train.resume=true" in cmd and "scale=paper" in cmd
    full = ACCELERATE + cmd[2:] + local_overrides(tmp_path, model, data) + SMALL
    out = _run(full)
    assert out.returncode == 0, out.stderr[-4000:]
    run_id = "multitask_llama3.paper.idlora"
    record = _record(tmp_path, run_id)
    assert record["train"]["processes"] == 2 and record["train"]["zero_stage"] == 2
    assert set(record["benchmarks"]) == {"gsm8k", "mmlu", "cqa", "humaneval"}
    assert not any("error" in b for b in record["benchmarks"].values()), record["benchmarks"]
    assert {"gsm8k", "mmlu", "cqa", "humaneval_pass@1"} <= set(record["metrics"])
    log = out.stdout + out.stderr
    assert log.count("gsm8k: gsm8k=") == 1 and log.count("humaneval: humaneval_pass@1=") == 1  # scored once
    run_dir = tmp_path / "runs" / run_id
    assert (run_dir / "adapter" / "adapter_model.safetensors").exists() and (run_dir / "wandb").is_dir()
    assert not (run_dir / "checkpoints").exists()  # deleted once the run was recorded

    again = _run(full)  # as a requeued job would: nothing is trained or scored twice
    assert again.returncode == 0, again.stderr[-3000:]
    assert "training already recorded" in again.stdout and "gsm8k: gsm8k=" not in again.stdout
    assert _record(tmp_path, run_id)["benchmarks"] == record["benchmarks"]


@pytest.mark.parametrize("method,config", [("lori", "zero2"), ("fft", "zero3")])
def test_lori_on_zero2_and_full_fine_tuning_on_zero3(sim, tmp_path, method, config):
    from idlora.runs.launch import accelerate_config

    assert accelerate_config(method) == f"configs/accelerate/{config}.yaml"  # what tables and Slurm launch
    model, data = sim
    cmd = [*ACCELERATE, "--config_file", f"configs/accelerate/{config}.yaml", "scripts/train.py",
           "experiment=gsm8k_llama3", "scale=paper", f"method={method}", "train.resume=true",
           *local_overrides(tmp_path, model, data), *SMALL]
    out = _run(cmd)
    assert out.returncode == 0, out.stderr[-4000:]
    record = _record(tmp_path, f"gsm8k_llama3.paper.{method}")
    assert "error" not in record["benchmarks"]["gsm8k"] and "gsm8k" in record["metrics"]
    assert (out.stdout + out.stderr).count("gsm8k: gsm8k=") == 1
    if method == "fft":  # the memory plan's choices, as configs/scale/paper.yaml gives them
        assert record["train"]["zero_stage"] == 3 and record["train"]["optimizer_offload"]
        assert record["train"]["gradient_checkpointing"]
    else:
        assert record["train"]["lori"]["mask_density"] == pytest.approx(0.1, abs=0.01)


def _wait_for(path, pattern, proc, timeout=600):
    start = time.time()
    while time.time() - start < timeout:
        if path.exists() and re.search(pattern, path.read_text(errors="replace")):
            return
        assert proc.poll() is None, path.read_text(errors="replace")[-3000:]
        time.sleep(1)
    raise AssertionError(f"{pattern!r} did not appear in {path}")


def test_slurm_job_checkpoints_on_its_warning_signal_requeues_and_resumes_exactly(sim, tmp_path):
    model, data = sim
    env = {**fake_slurm(tmp_path), "WANDB_MODE": "offline"}
    run_id = "gsm8k_llama3.paper.idlora"
    steps = ["train.max_steps=6", "eval.limit=2"]
    ref_root = tmp_path / "ref"
    ref = _run([*ACCELERATE, "--config_file", "configs/accelerate/zero2.yaml", "scripts/train.py",
                "experiment=gsm8k_llama3", "scale=paper", *local_overrides(ref_root, model, data), *steps], env)
    assert ref.returncode == 0, ref.stderr[-3000:]

    job_root = tmp_path / "job"
    sub = _run([sys.executable, "scripts/submit.py", "experiment=gsm8k_llama3", "methods=idlora", "scale=paper",
                *local_overrides(job_root, model, data), *steps], env)
    assert sub.returncode == 0, sub.stderr[-3000:]
    job_id = (job_root / "runs" / "slurm-jobs" / f"{run_id}.job").read_text().strip()
    script = job_root / "runs" / "slurm-scripts" / f"{run_id}.sbatch"
    log = tmp_path / "job.log"
    with open(log, "w") as fh:  # the batch step; Slurm sends USR1 to it alone (B:)
        proc = subprocess.Popen(["bash", str(script)], cwd=REPO, env={**env, "SLURM_JOB_ID": job_id},
                                stdout=fh, stderr=subprocess.STDOUT)
    _wait_for(log, r"\b[12]/6 \[", proc)
    proc.send_signal(signal.SIGUSR1)
    assert proc.wait(timeout=600) == 0, log.read_text()[-3000:]
    assert f"requeue {job_id}" in (tmp_path / "scontrol.log").read_text()
    ckpts = list((job_root / "runs" / run_id / "checkpoints").glob("step-*"))
    assert len(ckpts) == 1 and int(ckpts[0].name.split("-")[1]) < 6, ckpts
    assert not (job_root / "results" / f"{run_id}.json").exists()  # stopped runs record nothing

    again = subprocess.run(["bash", str(script)], cwd=REPO, env={**env, "SLURM_JOB_ID": job_id},
                           capture_output=True, text=True, timeout=900)  # the requeued job
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"resumed from {ckpts[0]}" in again.stdout + again.stderr
    a, b = _record(ref_root, run_id), _record(job_root, run_id)
    assert b["train"]["loss_curve"] == a["train"]["loss_curve"] and len(a["train"]["loss_curve"]) == 6
    assert b["metrics"] == a["metrics"]
    wa = load_file(ref_root / "runs" / run_id / "adapter" / "adapter_model.safetensors")
    wb = load_file(job_root / "runs" / run_id / "adapter" / "adapter_model.safetensors")
    assert wa.keys() == wb.keys() and all((wa[k] == wb[k]).all() for k in wa)


def test_make_table_at_paper_scale_passes_overrides_to_every_run(sim, tmp_path):
    # table_init: six runs, four of them Table 3's (the shared-run path), at a third of Table 3's sixteen
    model, data = sim
    args = " ".join(local_overrides(tmp_path, model, data) + SMALL)
    out = _run(["make", "table_init", "SCALE=paper", f"ARGS={args} results={tmp_path}/results out={tmp_path}/tables"],
               timeout=1800)
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
    table = json.loads((tmp_path / "tables" / "table_init.json").read_text())
    filled = {c["row"] for c in table["cells"] if c["ours"] is not None}
    assert len(filled) == 6, filled  # base + ID-LoRA with its bases chosen five ways
    records = [json.loads(run.read_text()) for run in (tmp_path / "results").glob("*.paper.*.json")
               if not run.name.endswith(".examples.json")]
    assert len(records) == 6 and {r["run_id"] for r in records} >= {"multitask_llama32.paper.idlora_serial"}
    for record in records:
        # accelerate with the shipped config; the untrained base row is scored in one process
        assert record["train"]["processes"] == (1 if record["method"] == "base" else 2), record["run_id"]
