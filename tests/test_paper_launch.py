"""The paper-scale launch path without training: what is refused before any work, the shipped launch files, and
Slurm submission against fake sbatch/squeue (no duplicates while a job is queued, sbatch options, the job script)."""

import json
import subprocess
import sys

import pytest
import yaml

from paper_sim import REPO, fake_slurm, local_overrides, paper_files


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    root = tmp_path_factory.mktemp("paper_sim")
    model, data = paper_files(root)
    return root, model, data


def _train(args, **kw):
    return subprocess.run([sys.executable, str(REPO / "scripts/train.py"), *args], cwd=REPO, capture_output=True,
                          text=True, timeout=300, **kw)


def test_paper_safety_run_without_hexphi_is_refused_before_anything_is_written(sim, tmp_path):
    root, model, data = sim
    out = _train(["experiment=safety_llama3", "scale=paper", f"model.path={model}",
                  f"data.safety_path={data['saferpaca']}", f"output_root={tmp_path}/runs",
                  f"results_dir={tmp_path}/results"])
    assert out.returncode == 2, out.stderr[-2000:]
    assert "eval.hexphi_path=DIR" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "runs").exists() and not (tmp_path / "results").exists()


def test_paper_saferpaca_without_its_file_is_refused(sim, tmp_path):
    root, model, data = sim
    out = _train(["experiment=safety_llama3", "scale=paper", f"model.path={model}",
                  f"eval.hexphi_path={data['hexphi']}", f"output_root={tmp_path}/runs",
                  f"results_dir={tmp_path}/results"])
    assert out.returncode == 2 and "data.safety_path=FILE" in out.stderr
    assert not (tmp_path / "runs").exists() and not (tmp_path / "results").exists()


@pytest.mark.parametrize("name", ["zero2", "zero3"])
def test_shipped_accelerate_files_leave_precision_to_the_deepspeed_file(name):
    """accelerate refuses mixed_precision beside a deepspeed_config_file; bf16 comes from the DeepSpeed file."""
    cfg = yaml.safe_load((REPO / f"configs/accelerate/{name}.yaml").read_text())
    assert "mixed_precision" not in cfg
    import json

    ds = json.loads((REPO / cfg["deepspeed_config"]["deepspeed_config_file"]).read_text())
    assert ds["bf16"]["enabled"] == "auto" and cfg["num_processes"] == 2


def _make_table(args, env):
    return subprocess.run([sys.executable, str(REPO / "scripts/make_table.py"), *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


def test_slurm_table_target_submits_each_missing_run_once(sim, tmp_path):
    root, model, data = sim
    env = fake_slurm(tmp_path)
    args = ["table=table3", "scale=paper", "cluster=slurm", f"results={tmp_path}/results", f"out={tmp_path}/tables",
            "slurm.partition=gpu", "slurm.account=proj42", "slurm.time=12:00:00",
            *local_overrides(tmp_path, model, data)]
    first = _make_table(args, env)
    assert first.returncode == 1, first.stderr[-2000:]  # runs pending
    log = (tmp_path / "sbatch.log").read_text().splitlines()
    n = 16  # Table 3: 5 rows x seeds 42, 1, 2, and the base row (nothing shared with Table 2 at paper scale)
    assert len(log) == n
    again = _make_table(args, env)  # every job still queued: nothing is submitted twice
    assert len((tmp_path / "sbatch.log").read_text().splitlines()) == n
    assert again.stdout.count("is queued or running") == n
    for job in (tmp_path / "queue").iterdir():  # the jobs left the queue without results (e.g. cancelled)
        job.unlink()
    _make_table(args, env)
    assert len((tmp_path / "sbatch.log").read_text().splitlines()) == 2 * n

    scripts = sorted((tmp_path / "runs" / "slurm-scripts").glob("*.sbatch"))
    assert len(scripts) == n
    text = {s.stem: s.read_text() for s in scripts}
    idlora = text["multitask_llama32.paper.idlora"]
    for line in ("#SBATCH --partition=gpu", "#SBATCH --account=proj42", "#SBATCH --time=12:00:00",
                 "#SBATCH --signal=B:USR1@", "#SBATCH --requeue", "--main_process_port",
                 "configs/accelerate/zero2.yaml", f"local_data.hexphi={data['hexphi']}", "python scripts/pmrc.py"):
        assert line in idlora, line
    assert "python scripts/pmrc.py" not in text["multitask_llama32.paper.lora"]
    assert "scripts/evaluate.py" not in idlora  # scoring is part of scripts/train.py (once, on rank 0)


def test_unknown_slurm_option_is_refused_before_submitting(tmp_path):
    env = fake_slurm(tmp_path)
    out = _make_table(["table=table3", "scale=paper", "cluster=slurm", "slurm.partitoin=gpu"], env)
    assert out.returncode == 2 and "slurm.partitoin" in out.stderr and "slurm.partition" in out.stderr
    assert not (tmp_path / "sbatch.log").exists()


def test_sbatch_script_passes_bash_syntax_check(sim, tmp_path):
    from idlora.experiments import Run
    from idlora.runs.launch import sbatch_script

    script = tmp_path / "job.sbatch"
    script.write_text(sbatch_script(Run("multitask_llama3", "idlora", [], "paper")))
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0


def test_the_memory_plan_shown_is_the_scripts_output():
    """The paper-scale page shows the plan by linking the file the script writes (no hand copy anywhere in the
    docs), and that file is the script's rendering of the plan it recorded."""
    from idlora.bench.memory_plan import markdown

    shown = (REPO / "results/tables/memory_plan.md").read_text()
    assert "](../results/tables/memory_plan.md)" in (REPO / "docs/paper_scale.md").read_text()
    first_row = next(line for line in shown.splitlines() if line.startswith("| llama3_8b |"))
    for page in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        assert first_row not in page.read_text(), f"{page.name} copies the memory plan by hand"
    assert shown.strip() == markdown(json.loads((REPO / "results/bench/memory_plan.json").read_text())).strip()


def test_pmrc_step_caches_every_matrix_once_and_then_clusters_nothing(sim, monkeypatch):
    from idlora import pmrc
    from idlora.config import compose
    from idlora.training.prepare import precompute_pmrc

    root, model, data = sim
    cfg = compose(["model=llama3_8b", "method=idlora", "scale=paper", f"local_models.llama3_8b={model}"])
    assert precompute_pmrc(cfg)
    cached = list(pmrc.cache_root().rglob("*.pt"))
    assert len(cached) == 14  # 2 layers x q,k,v,o,gate,up,down

    def must_not_cluster(*a, **kw):
        raise AssertionError("clustered again")

    monkeypatch.setattr(pmrc, "pmrc_rows_batch", must_not_cluster)
    assert precompute_pmrc(cfg)
    assert not precompute_pmrc(compose(["model=llama3_8b", "method=lora", "scale=paper",
                                        f"local_models.llama3_8b={model}"]))
