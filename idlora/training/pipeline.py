"""What ``scripts/train.py`` does, on one process or many: train the run, then score its benchmarks.

    train_and_evaluate(cfg)

A complete result is never destroyed (``retrain``): training it again needs ``train.retrain=true``, and the
retrained run replaces it only once complete. Training is skipped when this config's training is already recorded
(``train.resume=true``); the run is then scored for what it lacks. Scoring happens once, on rank 0, after the process
group is torn down: a distributed run is scored from its saved weights in one process on one device, a
single-process run from the model in memory.
"""

from __future__ import annotations

from omegaconf import DictConfig

from ..eval.evaluate import evaluate_run
from ..results import run_paths, scored_benchmarks, usable_record
from . import loop, retrain, setup
from .distributed import launcher_rank_world, teardown
from .recipes import recipe_for


def train_and_evaluate(cfg: DictConfig) -> dict | None:
    """Train, then score; returns the benchmarks' metrics on rank 0 (None elsewhere or when preempted)."""
    staged = retrain.guard(cfg)
    out = _train_and_evaluate(staged)
    retrain.promote(cfg, staged)
    return out


def _train_and_evaluate(cfg: DictConfig) -> dict | None:
    plan, paths = setup.validate(cfg), run_paths(cfg)
    done = usable_record(paths.results, plan.config) if cfg.train.resume else None
    if done is not None and paths.weights_marker.exists():
        # no process group was started: under a launcher the rank is in the environment, and rank 0 alone scores
        rank, processes = launcher_rank_world()
        if rank == 0:
            print(f"{cfg.run_id}: training already recorded in {paths.results}; scoring what is missing")
        out = {"model": None, "tokenizer": None, "rank": rank, "preempted": False, "processes": processes}
    else:
        out = recipe_for(cfg.method).train(cfg, plan, loop.run, record_it=done is None)
        if "accelerator" in out:  # a trained run: its processes end here
            if out["rank"] == 0 and not out["preempted"]:
                print(f"adapter: {out['adapter_dir']}  results: {out['results_path']}  final loss: "
                      f"{out['final_loss'] if out['final_loss'] is None else round(out['final_loss'], 4)}")
            teardown(out.pop("accelerator"))
    if out["rank"] != 0 or out["preempted"] or not (cfg.evaluate_after_training and cfg.eval.benchmarks):
        return None
    already = scored_benchmarks(done) if done is not None else set()
    names = [b for b in cfg.eval.benchmarks if b not in already]
    if not names:
        return {}
    in_memory = out["processes"] == 1 and out["model"] is not None
    return evaluate_run(cfg, model=out["model"] if in_memory else None,
                        tokenizer=out["tokenizer"] if in_memory else None, benchmarks=names)
