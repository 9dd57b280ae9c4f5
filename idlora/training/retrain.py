"""A rerun never destroys a complete result.

A run whose results file already holds this config's training and every configured benchmark is left alone: training
it again is one clear error that names the override. With ``train.retrain=true`` the run trains and scores in a
staging area (``<results_dir>/.retrain/``, ``<output_root>/.retrain/``); only once it is complete (trained, and every
benchmark scored without error) do its results file, per-example file and adapter replace the old ones. A retrain
stopped at any point (even during scoring) leaves the complete result as it was; ``train.retrain=true
train.resume=true`` continues the staged run.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from ..errors import ConfigError
from ..files import atomic_write_json
from ..results import run_paths, scored_benchmarks, usable_record


def complete_record(cfg: DictConfig) -> dict | None:
    """The run's record if its results file holds this config's training and every benchmark it scores."""
    benchmarks = cfg.eval.benchmarks if cfg.get("evaluate_after_training") else ()
    return usable_record(run_paths(cfg).results, OmegaConf.to_container(cfg, resolve=True), benchmarks)


def guard(cfg: DictConfig) -> DictConfig:
    """The config to run: ``cfg`` itself, or with ``train.retrain=true`` over a complete result, ``cfg`` pointed at the
    staging area. A complete result without ``train.retrain=true`` is one clear error, before any work."""
    done = None if cfg.train.get("resume") and not cfg.train.get("retrain") else complete_record(cfg)
    if done is None:
        return cfg
    if not cfg.train.get("retrain"):
        raise ConfigError(f"{run_paths(cfg).results} already holds run {cfg.run_id!r}, complete (trained; scored: "
                          f"{', '.join(sorted(scored_benchmarks(done)))}); nothing was done. To train it again, add "
                          "train.retrain=true: the new run replaces this file only once it is trained and scored.")
    staging, staged = run_paths(cfg).staged(), cfg.copy()
    with open_dict(staged):
        staged.results_dir, staged.output_root = str(staging.results_dir), str(staging.output_root)
    return staged


def promote(final: DictConfig, staged: DictConfig) -> Path | None:
    """Move a complete staged run into place (results file, per-example file, adapter directory), its record's paths
    rewritten to the final ones; None (nothing moved) if the staged run is not complete."""
    if staged is final or complete_record(staged) is None:
        return None
    src, dst = run_paths(staged), run_paths(final)
    record = json.loads(src.results.read_text())
    if any(entry.get("error") for entry in (record.get("benchmarks") or {}).values()):
        return None
    src_dir, dst_dir = src.out_dir, dst.out_dir
    if src_dir.exists():
        shutil.rmtree(dst_dir, ignore_errors=True)
        dst_dir.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src_dir, dst_dir)
    for key in ("results_dir", "output_root"):
        record["config"][key] = final[key]
    if (record.get("train") or {}).get("adapter_dir"):
        record["train"]["adapter_dir"] = str(dst.weights)
    for side in (record.get("per_example_file"), record["provenance"].get("git_diff_file")):
        if side:  # the record names its side files (RunPaths.examples, RunPaths.diff)
            os.replace(src.results_dir / side, dst.results_dir / side)
    atomic_write_json(dst.results, record)  # the last step: until here the old result stands
    src.results.unlink()
    return dst.results
