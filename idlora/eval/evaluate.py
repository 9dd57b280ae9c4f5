"""Score a trained run on its benchmarks and add the numbers to its results file.

    evaluate_run(cfg)                       # after training (scripts/train.py), model already in memory
    python scripts/evaluate.py run=<run id or dir> [eval=gsm8k,humaneval] [limit=N]

Every benchmark is an ``idlora.eval.base.Benchmark`` (the list and registry in ``idlora.eval``): the generation
ones (GSM8K, HumanEval, HEx-PHI, MBPP) load examples, build prompts, generate in batches, score each output,
aggregate; MMLU and CommonsenseQA are log-likelihood multiple choice through lm-eval (``idlora.eval.lm_eval_mc``).
Each benchmark's metrics and per-example scores are merged into the run's JSON atomically as soon as it finishes;
a benchmark that crashes is recorded as an error and the others still run, so nothing already measured is lost.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from contextlib import contextmanager, nullcontext
from pathlib import Path

import torch
from filelock import FileLock
from omegaconf import DictConfig, OmegaConf
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from ..errors import ConfigError
from ..methods import BASE
from ..models import _resolve_dtype, load_model_and_tokenizer, precision
from ..models.precision import scoring as scoring_in
from ..results import record_path, run_paths, update_metrics
from . import ALL_BENCHMARKS, get_benchmark
from .base import benchmark_source
from .generation import model_device
from .humaneval import HUMANEVAL_SETS
from .lm_eval_mc import MC_FORMS


def available_benchmarks() -> list[str]:
    return sorted(ALL_BENCHMARKS)


def find_run(run: str, results_dir: str = "results/runs") -> tuple[Path, dict]:
    """The results file and record of a run given by id, results file, or output directory."""
    p = Path(run)
    candidates = [p] if p.suffix == ".json" else [record_path(results_dir, p.name)]
    for c in candidates:
        if c.exists():
            try:
                return c, json.loads(c.read_text())
            except ValueError as e:
                raise ConfigError(f"results file {c} is not valid JSON ({e}); re-run training for it.") from None
    raise ConfigError(f"no results file for run {run!r} (looked for {candidates[0]}); train it first with "
                      "scripts/train.py, or pass run=<id> as printed by training.")


def load_trained(record: dict):
    """Base model + the run's weights (``run_paths``: its adapter, or the whole model for fft; the base model alone
    for ``base``), in eval mode."""
    cfg = OmegaConf.create(record["config"])
    if cfg.method.name == BASE:  # the untrained model: nothing was saved
        model, tokenizer = load_model_and_tokenizer(cfg.model)
        return model.to(eval_device()).eval(), tokenizer
    paths = run_paths(record["config"])
    weights = Path(record.get("train", {}).get("adapter_dir") or paths.weights)
    if not (weights / paths.weights_marker.name).exists():
        raise ConfigError(f"run {cfg.run_id}: no {'saved model' if paths.full_model else 'adapter'} in {weights} "
                          f"({paths.weights_marker.name} missing); the run did not finish training — resume it with "
                          "train.resume=true.")
    if paths.full_model:
        model = AutoModelForCausalLM.from_pretrained(weights, dtype=_resolve_dtype(cfg.model.get("dtype")))
        tokenizer = AutoTokenizer.from_pretrained(weights)
        if tokenizer.pad_token is None:  # saved from a hub tokenizer that has none (LLaMA-3): as loading does
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.padding_side = "left"
        return model.to(eval_device()).eval(), tokenizer
    base, tokenizer = load_model_and_tokenizer(cfg.model)
    return PeftModel.from_pretrained(base, weights).to(eval_device()).eval(), tokenizer


def eval_device():
    """Where a saved run is scored: the first GPU when there is one (an 8B model would generate for days on a CPU)."""
    return torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")


def run_benchmark(name: str, model, tokenizer, eval_cfg: DictConfig, family: str, seed: int
                  ) -> tuple[dict, list, dict]:
    """(metrics in percent, per-example scores, information such as generation speed) of one benchmark."""
    bench = get_benchmark(name)
    metrics, per_example = bench.evaluate(model, tokenizer, eval_cfg, family=family, seed=seed)
    return metrics, per_example, {**bench.info, "data_source": benchmark_source(eval_cfg, name)}


# A lock file's path, set by the launcher running several runs at once: each benchmark is then scored while holding
# it, one at a time across those runs (a benchmark's memory peak, not its numbers, depends on what runs beside it).
SCORING_LOCK = "IDLORA_SCORING_LOCK"


@contextmanager
def one_scoring_at_a_time():
    """Hold the machine's scoring lock if the launcher set one (``SCORING_LOCK``); otherwise nothing."""
    path = os.environ.get(SCORING_LOCK)
    with FileLock(path) if path else nullcontext():
        yield


JUDGES = ("keyword", "model")
CHOICES = {"judge": JUDGES, "mc_form": MC_FORMS, "humaneval_set": HUMANEVAL_SETS}  # eval keys with fixed values


def check_eval_config(eval_cfg, benchmarks: list[str] | None = None) -> list[str]:
    """The benchmark names to run; unknown names or judge are one clear error (checked before training)."""
    names = list(benchmarks if benchmarks is not None else eval_cfg.benchmarks)
    valid = available_benchmarks()
    unknown = [n for n in names if n not in valid]
    if unknown:
        raise ConfigError(f"unknown benchmark(s) {unknown}; valid: {', '.join(valid)} (eval.benchmarks=[...]).")
    for key, valid_values in CHOICES.items():
        value = eval_cfg.get(key)
        if value is not None and value not in valid_values:
            what = "HEx-PHI judge" if key == "judge" else f"eval.{key}"
            raise ConfigError(f"unknown {what} {value!r}; valid: {', '.join(valid_values)} (eval.{key}=...).")
    if "hexphi" in names and benchmark_source(eval_cfg, "hexphi") not in ("synthetic", "real") \
            and not eval_cfg.get("hexphi_path"):
        # the project's 33 placeholders are mini data: a paper-scale refusal rate must never be measured on them
        raise ConfigError("HEx-PHI is gated on the Hugging Face hub (LLM-Tuning-Safety/HEx-PHI): accept its terms, "
                          "download it, and pass its directory of category_N.csv files as eval.hexphi_path=DIR "
                          "(or local_data.hexphi=DIR).")
    return names


# PEFT types whose update is a fixed ΔW: LoRA (DoRA = LoRA with use_dora, LoRA-FA = LoRA with A frozen), LoRI, VeRA,
# VB-LoRA. Lily's is routed (and mixed per batch): PEFT cannot merge it.
MERGEABLE = ("LORA", "LORI", "VERA", "VBLORA")


def inference_model(model):
    """The model to generate with: an adapter with a fixed ΔW (LoRA, DoRA, LoRA-FA, LoRI, VeRA, VB-LoRA) merged into
    the base weights, as one deploys it (the same function up to float rounding; DoRA's unmerged decode is ~6x slower
    on CPU); routed adapters (ID-LoRA, HydraLoRA, MoELoRA, Lily) cannot be merged and are returned as they are."""
    peft_type = model.peft_config[model.active_adapter].peft_type if isinstance(model, PeftModel) else None
    if getattr(peft_type, "value", peft_type) in MERGEABLE:
        return model.merge_and_unload()
    return model


def _scoring_precision(cfg: DictConfig, model) -> dict:
    """The precision rule of training (``train.mixed_precision``, ``idlora.models.precision``) on the model's device:
    a run is scored as it was trained (bf16 autocast where the device has native bf16, unless the run said no)."""
    return precision.decision(cfg.train.get("mixed_precision", "auto"), model_device(model))


def evaluate_run(cfg: DictConfig, model=None, tokenizer=None, benchmarks: list[str] | None = None,
                 results_path: Path | None = None) -> dict:
    """Run every benchmark of ``cfg.eval`` (or ``benchmarks``), in the run's precision (``_scoring_precision``,
    recorded in each benchmark's info); returns {benchmark: metrics or error}."""
    names = check_eval_config(cfg.eval, benchmarks)
    results_path = results_path or run_paths(cfg).results
    if model is None:
        _, record = find_run(str(results_path))
        model, tokenizer = load_trained(record)
    model = inference_model(model).eval()
    scoring = _scoring_precision(cfg, model)
    summary = {}
    for name in names:
        with one_scoring_at_a_time():  # the wait for it is no benchmark's time
            summary[name] = _score_one(name, cfg, model, tokenizer, scoring, results_path)
    return summary


def _score_one(name: str, cfg: DictConfig, model, tokenizer, scoring: dict, results_path: Path) -> dict:
    """Score one benchmark and merge it into the results file; a crash is recorded as the benchmark's error."""
    start = time.time()
    try:
        with scoring_in(scoring["used"], model):
            metrics, per_example, info = run_benchmark(name, model, tokenizer, cfg.eval, cfg.model.family,
                                                       seed=cfg.seed)
        info = {**info, "precision": scoring}
    except ConfigError:
        raise
    except Exception as e:  # one benchmark's crash must not lose the others' results
        update_metrics(results_path, name, {}, [], time.time() - start,
                       error=f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=5)}")
        print(f"{name}: FAILED ({type(e).__name__}: {e})")
        return {"error": f"{type(e).__name__}: {e}"}
    update_metrics(results_path, name, metrics, per_example, time.time() - start, info=info)
    print(f"{name}: " + ", ".join(f"{k}={v:.2f}" for k, v in metrics.items()))
    return metrics
