"""The training loop: one method, one experiment, any number of devices (plain Accelerate, nanoGPT-style).

    run(cfg)  # cfg from idlora.config.compose([...]) or scripts/train.py

Order of work, cheapest checks first: the config and the method are validated on a meta-device copy of the
model (no weights), the data is loaded, and only then are the weights loaded and the adapter built (PMRC on
the main process first, then every rank reads the cached indices). Each optimizer step sees ``batch_size``
examples — split over the processes and over micro-batches by gradient accumulation — taken from a per-epoch
permutation seeded by (seed, epoch), so the order does not depend on the number of devices or on resuming.
Checkpoints (``idlora.training.checkpoint``) hold the trainable weights, optimizer, scheduler, RNG states and loss
history; ``train.resume=true`` continues from the newest complete one and ends with the same adapter.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from . import checkpoint as ckpt_io
from . import retrain
from .recipes import recipe_for
from ..config import effective_lr, per_method
from ..errors import ConfigError
from ..methods import BASE, apply_method, build_peft_config, count_parameters
from ..models import precision
from ..results import new_run_record, scored_benchmarks, usable_record, write_run_record


def _meta_check(cfg: DictConfig) -> None:
    """Build the adapter on a meta-device copy of the model: a wrong target, k*r > d_out or an odd d_out with
    Rank Boosting fails here, before any weight is loaded or any data is read. The model's shape comes from
    its shipped ``configs/hf/<name>/config.json`` (no download), or from the tiny model itself."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from ..config import CONFIG_DIR

    shipped = CONFIG_DIR / "hf" / cfg.model.name / "config.json"
    local = cfg.model.get("path")
    if local and (Path(local) / "config.json").exists():  # a local copy: its own shapes
        hf_config = AutoConfig.from_pretrained(local)
    elif shipped.exists():
        hf_config = AutoConfig.from_pretrained(shipped.parent)
    elif cfg.model.source == "tiny":
        from ..models import load_model_and_tokenizer

        hf_config = load_model_and_tokenizer(cfg.model)[0].config
    else:
        return  # an unknown local model: the real build checks the same things right after loading
    with torch.device("meta"):
        apply_method(AutoModelForCausalLM.from_config(hf_config), cfg.method)


def _epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    g = torch.Generator().manual_seed(seed * 1000 + epoch)
    return torch.randperm(n, generator=g).tolist()


def global_batches(n_examples: int, batch_size: int, seed: int, total_steps: int):
    """Index lists of each optimizer step: consecutive slices of per-epoch permutations (last partial one dropped)."""
    per_epoch = max(1, n_examples // batch_size)
    for step in range(total_steps):
        epoch, within = divmod(step, per_epoch)
        order = _epoch_order(n_examples, seed, epoch)
        yield step, order[within * batch_size:(within + 1) * batch_size]


def _check_previous_results(path: Path, config: dict) -> None:
    from ..results import recorded_identity, run_identity

    previous, config = recorded_identity(path), run_identity(config)
    if previous is not None and previous != config:
        diff = _config_diff(previous, config)
        raise ConfigError(
            f"{path} already holds run {path.stem!r} with a different config (differs in: {', '.join(diff)}). "
            "Give this run its own id with run_tag=_<name>, or delete that file to replace it."
        )


def _config_diff(a: dict, b: dict, prefix: str = "") -> list[str]:
    """Dotted keys where two nested configs differ."""
    out = []
    for k in sorted(set(a) | set(b), key=str):
        x, y = a.get(k), b.get(k)
        if isinstance(x, dict) and isinstance(y, dict):
            out += _config_diff(x, y, f"{prefix}{k}.")
        elif x != y:
            out.append(f"{prefix}{k}")
    return out


CHECKPOINT_CONFIG = "config.json"
# A file in the run's output directory that asks a running training to checkpoint and stop at the next step
# (the Slurm job's warning-signal handler writes it; experiments/slurm/train.sbatch).
STOP_FILE = "STOP"


def _check_checkpoint_config(ckpt_root: Path, config: dict) -> None:
    """Resume only from a checkpoint written by this run's config: its optimizer state carries the old lr and
    its weights the old method, so a stale one would silently continue another experiment."""
    from ..results import run_identity

    found = ckpt_io.latest(ckpt_root)
    if found is None:
        return
    path = found / CHECKPOINT_CONFIG
    saved = json.loads(path.read_text()) if path.exists() else None
    if saved != run_identity(config):
        why = (f"differs in: {', '.join(_config_diff(saved, run_identity(config))[:6])}" if saved is not None
               else "it records no config")
        raise ConfigError(f"checkpoint {found} was written by another config ({why}); resuming would continue that "
                          f"run. Delete {ckpt_root} to start this run afresh, or give it its own id with run_tag=_<name>.")


def validate(cfg: DictConfig) -> dict:
    """Every check that needs no weights, before any work: the method, the benchmarks and their data sources, the
    training data's files, the optimizer, and an earlier results file or checkpoint of the same run id. Returns the
    resolved config as a dict (what the results file records)."""
    from ..data import check_data_config
    from ..eval.evaluate import check_eval_config

    plain_cfg = OmegaConf.to_container(cfg, resolve=True)
    build_peft_config(cfg.method)  # a bad method value fails before anything else
    if cfg.get("evaluate_after_training") and cfg.eval.benchmarks:
        check_eval_config(cfg.eval)  # so does a misspelt benchmark or a missing test set, before hours of training
    check_data_config(cfg.data, cfg.scale.name)
    _check_optimizer(cfg.train)
    precision.check(cfg.train.mixed_precision)
    if not cfg.train.resume:
        _check_previous_results(retrain.results_path(cfg), plain_cfg)
    else:
        _check_checkpoint_config(_out_dir(cfg) / "checkpoints", plain_cfg)
    _meta_check(cfg)
    return plain_cfg


def _out_dir(cfg: DictConfig) -> Path:
    return Path(cfg.output_root) / cfg.run_id


def _adapter_dir(cfg: DictConfig) -> Path:
    return _out_dir(cfg) / ("model" if cfg.method.name == "fft" else "adapter")


# Process-group timeout: rank 0 may cluster PMRC (uncached) or save a large model while the others wait.
PROCESS_GROUP_TIMEOUT_S = 3 * 3600


def _accelerator(cfg: DictConfig):
    """(accelerator, processes, rank, gradient accumulation steps) for the run's batch sizes."""
    from datetime import timedelta

    from accelerate import Accelerator
    from accelerate.utils import InitProcessGroupKwargs

    tc = cfg.train
    used = precision.resolve(tc.mixed_precision)
    _fresh_state_for(used)
    accelerator = Accelerator(mixed_precision=used, log_with=_tracker(cfg),
                              kwargs_handlers=[InitProcessGroupKwargs(timeout=timedelta(seconds=PROCESS_GROUP_TIMEOUT_S))])
    rank, nproc = _rank_world()  # Accelerate reports 1 process for DeepSpeed on CPU (gloo); the group knows the truth
    if tc.batch_size % (tc.micro_batch_size * nproc):
        raise ConfigError(
            f"train.batch_size={tc.batch_size} must be a multiple of micro_batch_size×processes = "
            f"{tc.micro_batch_size}×{nproc}; change train.micro_batch_size."
        )
    accum = tc.batch_size // (tc.micro_batch_size * nproc)
    accelerator.gradient_accumulation_steps = accum  # accelerator.accumulate() below steps every `accum` micro-batches
    if accelerator.state.deepspeed_plugin is not None:  # DeepSpeed accumulates itself: give it the same numbers
        plugin = accelerator.state.deepspeed_plugin
        plugin.deepspeed_config.update({"gradient_accumulation_steps": accum, "train_batch_size": tc.batch_size,
                                        "train_micro_batch_size_per_gpu": tc.micro_batch_size})
        if tc.max_grad_norm:
            plugin.deepspeed_config["gradient_clipping"] = float(tc.max_grad_norm)
        if per_method(cfg, "optimizer_offload", False):  # the memory plan's choice (configs/scale/paper.yaml)
            plugin.deepspeed_config["zero_optimization"]["offload_optimizer"] = {"device": "cpu", "pin_memory": True}
            plugin.deepspeed_config["zero_force_ds_cpu_optimizer"] = False  # torch's AdamW steps on the CPU copy
    return accelerator, nproc, rank, accum


def _fresh_state_for(mixed_precision: str) -> None:
    """Accelerate keeps one state per process and refuses a second precision in it; a process that trains runs of
    different precisions one after another (tests, scripts) starts the next from a fresh state. The process group
    (Accelerate's PartialState) is kept."""
    from accelerate.state import AcceleratorState

    shared = AcceleratorState._shared_state
    if shared and shared.get("_mixed_precision") != mixed_precision:
        AcceleratorState._reset_state()


def _offloaded(accelerator) -> bool:
    plugin = accelerator.state.deepspeed_plugin
    return plugin is not None and "offload_optimizer" in plugin.deepspeed_config.get("zero_optimization", {})


def _zero_stage(accelerator) -> int | None:
    plugin = accelerator.state.deepspeed_plugin
    return None if plugin is None else int(plugin.zero_stage)


def _build_model(cfg: DictConfig, rank: int):
    """(model, tokenizer, what the method's recipe recorded): base weights, the method (PMRC on rank 0 first; the
    other ranks then read its cache), the method's preparation (``recipes``: LoRI's masks), gradient checkpointing."""
    from ..models import load_model_and_tokenizer

    model, tokenizer = load_model_and_tokenizer(cfg.model)
    if rank != 0:
        _barrier()  # rank 0 clusters and caches first; the others then read its files
    model = apply_method(model, cfg.method, seed=cfg.seed)
    if rank == 0:
        _barrier()
    prepared = recipe_for(cfg.method).prepare(cfg, model, train=run)
    if cfg.train.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        if hasattr(model, "enable_input_require_grads"):
            model.enable_input_require_grads()
    return model, tokenizer, prepared


def _examples(cfg: DictConfig, records: list[dict], tokenizer) -> list[dict]:
    from ..data import tokenize_example

    tc = cfg.train
    examples = [tokenize_example(r, tokenizer, cfg.model.family, tc.max_length) for r in records]
    examples = [e for e in examples if e is not None]
    if len(examples) < tc.batch_size:
        raise ConfigError(f"only {len(examples)} usable training examples for batch_size={tc.batch_size}; "
                          "supply more data or lower train.batch_size.")
    return examples


def run(cfg: DictConfig) -> dict:
    """Train ``cfg.method`` on ``cfg.data`` and save the adapter; returns a summary (also in the results file).

    ``summary["preempted"]`` is true when a stop was requested (``STOP_FILE``, e.g. by Slurm's warning signal):
    the run then saved a checkpoint and stopped without writing its results; ``train.resume=true`` continues it."""
    from accelerate.utils import set_seed

    from ..data import load_dataset_for

    t0 = time.time()
    plain_cfg = validate(cfg)
    tc = cfg.train
    accelerator, nproc, rank, accum = _accelerator(cfg)
    set_seed(cfg.seed)
    if rank == 0:
        (_out_dir(cfg) / STOP_FILE).unlink(missing_ok=True)  # a stop request is for the job that received it
    records = load_dataset_for(cfg.data, scale=cfg.scale.name, seed=cfg.seed)
    dev_records = _dev_records(cfg)
    model, tokenizer, prepared = _build_model(cfg, rank)
    trainable, total = count_parameters(model)
    if prepared is not None:  # e.g. LoRI's masked entries of B: parameters that never change; count what trains
        trainable -= prepared.get("masked_entries", 0)
    examples = _examples(cfg, records, tokenizer)
    total_steps = int(tc.max_steps) if tc.max_steps else (len(examples) // tc.batch_size) * int(tc.epochs)
    params = [p for p in model.parameters() if p.requires_grad]
    own = recipe_for(cfg.method).optimizer(cfg, model, effective_lr(cfg),
                                           deepspeed=accelerator.state.deepspeed_plugin is not None)
    optimizer, scheduler = _optimizer(tc, params, effective_lr(cfg), _horizon(tc, total_steps), optimizer=own)
    model, optimizer = accelerator.prepare(model, optimizer)
    state = _TrainState(accelerator, model, optimizer, scheduler, _zero_stage(accelerator), rank, nproc, plain_cfg)
    state.dev_records = dev_records
    ckpt_root = _out_dir(cfg) / "checkpoints"
    start_step, losses = 0, []
    found = ckpt_io.latest(ckpt_root) if tc.resume else None
    if found is not None:
        start_step, losses = _load_checkpoint(found, state)
        accelerator.print(f"resumed from {found} (step {start_step}/{total_steps})")
    if accelerator.log_with:
        _out_dir(cfg).mkdir(parents=True, exist_ok=True)
        accelerator.init_trackers("idlora", config=plain_cfg,
                                  init_kwargs={"wandb": {"name": cfg.run_id, "dir": str(_out_dir(cfg))}})
    stopped = _train_loop(cfg, state, examples, tokenizer, params, start_step, total_steps, losses)
    summary = {"steps": total_steps, "lr": effective_lr(cfg), "examples": len(examples), "loss_curve": losses,
               "final_loss": losses[-1] if losses else None, "seconds": time.time() - t0,
               "processes": nproc, "grad_accum": accum, "adapter_dir": str(_adapter_dir(cfg)),
               "zero_stage": state.zero_stage, "gradient_checkpointing": bool(tc.gradient_checkpointing),
               "optimizer_offload": _offloaded(accelerator),
               "precision": precision.decision(tc.mixed_precision, accelerator.device), "dev_curve": state.dev_curve}
    if stopped:
        return {"model": None, "tokenizer": tokenizer, "results_path": retrain.results_path(cfg),
                "accelerator": accelerator, "rank": rank, "preempted": True, **summary}
    if prepared is not None:
        summary[cfg.method.name] = prepared
    unwrapped = _save_final(cfg, state, tokenizer)
    if rank == 0:
        record = new_run_record(run_id=cfg.run_id, experiment=cfg.experiment, scale=cfg.scale.name,
                                model=cfg.paper_model, method=cfg.method.name, config=plain_cfg,
                                trainable_params=trainable, total_params=total)
        record["train"] = summary
        record["base_model"] = cfg.model.name
        write_run_record(retrain.results_path(cfg), record)
        shutil.rmtree(ckpt_root, ignore_errors=True)  # the adapter and the record hold everything the run needs now
    _barrier()
    return {"model": unwrapped, "tokenizer": tokenizer, "results_path": retrain.results_path(cfg),
            "accelerator": accelerator, "rank": rank, "preempted": False, **summary}


class _TrainState:
    """What the loop, the checkpoints and the final save share."""

    def __init__(self, accelerator, model, optimizer, scheduler, zero_stage, rank, nproc, config):
        self.accelerator, self.model, self.optimizer, self.scheduler = accelerator, model, optimizer, scheduler
        self.zero_stage, self.rank, self.nproc, self.config = zero_stage, rank, nproc, config
        self.dev_records: list[dict] | None = None  # held-out dev items (train.dev_loss), scored at each checkpoint
        self.dev_curve: list[dict] = []

    @property
    def deepspeed(self) -> bool:
        return self.zero_stage is not None


def _train_loop(cfg, state: _TrainState, examples, tokenizer, params, start_step, total_steps, losses) -> bool:
    """Optimizer steps ``start_step .. total_steps``; True if it stopped early on a stop request (checkpoint saved)."""
    from tqdm.auto import tqdm

    from ..data import SFTCollator

    tc, acc, rank, nproc = cfg.train, state.accelerator, state.rank, state.nproc
    collate = SFTCollator(tokenizer, pack=tc.packing)
    ckpt_root, stop_file = _out_dir(cfg) / "checkpoints", _out_dir(cfg) / STOP_FILE
    bar = tqdm(total=total_steps, initial=start_step, desc=f"train {cfg.run_id}", unit="step", disable=rank != 0)
    state.model.train()
    for step, batch_idx in global_batches(len(examples), tc.batch_size, cfg.seed, total_steps):
        if step < start_step:
            continue
        mine = batch_idx[rank::nproc]  # this process's share of the global batch
        step_loss = _step(state, tc, [examples[i] for i in mine], collate, params)
        mean_loss, stop = _reduce(state, step_loss, rank == 0 and stop_file.exists())
        losses.append(mean_loss)
        bar.update(1)
        lr = state.scheduler.get_last_lr()[0]
        bar.set_postfix(loss=f"{mean_loss:.4f}", lr=f"{lr:.2e}")
        if acc.log_with and (step + 1) % tc.log_steps == 0:
            acc.log({"train/loss": mean_loss, "train/lr": lr}, step=step + 1)
        done = step + 1
        _dev_point(cfg, state, tokenizer, done, total_steps)
        if done < total_steps and ((tc.save_steps and done % tc.save_steps == 0) or stop):
            _save_checkpoint(ckpt_root, done, losses, state, keep=int(tc.keep_checkpoints))
        if stop and done < total_steps:
            acc.print(f"stop requested ({stop_file}): checkpoint step-{done} saved; resume with train.resume=true")
            bar.close()
            return True
    bar.close()
    return False


def _step(state: _TrainState, tc, batch_examples: list[dict], collate, params) -> float:
    """One optimizer step over this process's examples in micro-batches (gradient accumulation); its mean loss."""
    acc, deepspeed = state.accelerator, state.deepspeed
    micro = [batch_examples[i:i + tc.micro_batch_size] for i in range(0, len(batch_examples), tc.micro_batch_size)]
    step_loss = 0.0
    for chunk in micro:  # len(micro) == accum: the last micro-batch is the accumulation boundary
        batch = {k: v.to(acc.device) for k, v in collate(chunk).items()}
        with acc.accumulate(state.model):  # no gradient sync until the boundary; loss scaled by 1/accum
            loss = state.model(**batch, use_cache=False).loss  # a cache would hide a packed row's boundaries
            acc.backward(loss)
            if acc.sync_gradients and tc.max_grad_norm and not deepspeed:
                acc.clip_grad_norm_(params, tc.max_grad_norm)
            state.optimizer.step()  # a no-op before the boundary
            state.optimizer.zero_grad(set_to_none=True)
        step_loss += loss.detach().float().item() / len(micro)
    state.scheduler.step()
    return step_loss


def _dev_records(cfg: DictConfig) -> list[dict] | None:
    """The run's held-out dev items when ``train.dev_loss`` is on (``idlora.data.load_dev_for``), else None."""
    if not cfg.train.dev_loss:
        return None
    from ..data import load_dev_for

    records = load_dev_for(cfg.data, scale=cfg.scale.name, seed=cfg.seed)
    if not records:
        raise ConfigError(f"train.dev_loss=true but data {cfg.data.name!r} has no held-out dev items at scale "
                          f"{cfg.scale.name}; set train.dev_loss=false.")
    return records


def _dev_point(cfg: DictConfig, state: _TrainState, tokenizer, done: int, total_steps: int) -> None:
    """At each checkpoint step (``train.save_steps``) and the last, the dev items' teacher-forced loss
    (``idlora.eval.dev``) goes to the run's learning curve (``dev_curve``). Every rank computes it (a ZeRO-3 forward
    needs them all); the model returns to training mode and no random number is drawn, so training is unchanged."""
    tc = cfg.train
    if state.dev_records is None or not (done == total_steps or (tc.save_steps and done % tc.save_steps == 0)):
        return
    from ..eval.dev import dev_loss

    point = dev_loss(state.model, tokenizer, state.dev_records, cfg.model.family, int(tc.max_length))
    state.dev_curve.append({"step": done, **point})
    state.accelerator.print(f"step {done}: dev loss {point['loss']:.4f} "
                            f"({', '.join(f'{t} {v:.4f}' for t, v in point['per_task'].items())}; {point['seconds']} s)")


def _reduce(state: _TrainState, step_loss: float, stop: bool) -> tuple[float, bool]:
    """The loss averaged over processes, and whether any process was asked to stop (one collective for both)."""
    if state.nproc == 1:
        return step_loss, stop
    t = torch.tensor([step_loss, float(stop)], device=state.accelerator.device)
    torch.distributed.all_reduce(t)
    return t[0].item() / state.nproc, bool(t[1].item() > 0)


def _save_final(cfg: DictConfig, state: _TrainState, tokenizer):
    """Save the adapter (the whole model for fft) on rank 0; returns the unwrapped model. Only ZeRO-3 needs every
    rank to gather the shards; under ZeRO-2 and DDP each rank holds the whole model, so rank 0 alone saves it."""
    unwrapped = state.accelerator.unwrap_model(state.model)
    adapter_dir = _adapter_dir(cfg)
    if state.zero_stage == 3:
        full = state.accelerator.get_state_dict(state.model)  # a collective: every rank calls it
        if state.rank == 0:
            unwrapped.save_pretrained(adapter_dir, state_dict=full)
    elif state.rank == 0:
        unwrapped.save_pretrained(adapter_dir)
    if state.rank == 0:
        tokenizer.save_pretrained(adapter_dir)
    return unwrapped


OPTIMIZERS = {"adamw": torch.optim.AdamW}
SCHEDULERS = ("linear", "constant")


def _check_optimizer(tc) -> None:
    for key in ("packing", "dev_loss"):
        if not isinstance(tc.get(key), bool):
            raise ConfigError(f"train.{key}={tc.get(key)!r} is not valid; give true or false (train.{key}=true).")
    if tc.optimizer not in OPTIMIZERS:
        raise ConfigError(f"train.optimizer={tc.optimizer!r} is not known; valid: {', '.join(OPTIMIZERS)}.")
    if tc.lr_scheduler not in SCHEDULERS:
        raise ConfigError(f"train.lr_scheduler={tc.lr_scheduler!r} is not known; valid: {', '.join(SCHEDULERS)}.")


def _horizon(tc, total_steps: int) -> int:
    """The lr schedule's length: ``train.schedule_steps``, or the run's own steps when null. A longer horizon stops
    the run part-way down its decay, exactly where a run of ``schedule_steps`` steps passes step ``total_steps`` (the
    data order does not depend on the length either): the fair protocol's final runs stop at the checkpoint that dev
    chose from a tuning run's curve (docs/protocol.md)."""
    horizon = tc.get("schedule_steps") or total_steps
    if horizon < total_steps:
        raise ConfigError(f"train.schedule_steps={horizon} is shorter than the run's {total_steps} steps; give at "
                          f"least {total_steps}, or null for the run's own length.")
    return int(horizon)


def _optimizer(tc, params, lr: float, total_steps: int, optimizer=None):
    """(optimizer, scheduler) as the config names them (or ``optimizer``, a method recipe's own, e.g. LoRA-FA's):
    linear warm-up, then linear decay to 0 (HF's "linear") or a constant lr (HF's "constant_with_warmup")."""
    if optimizer is None:
        optimizer = OPTIMIZERS[tc.optimizer](params, lr=lr, betas=tuple(tc.betas), weight_decay=tc.weight_decay)
    warmup, decay = int(tc.warmup_steps), tc.lr_scheduler == "linear"

    def lr_lambda(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup)) if decay else 1.0

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda)


def train_and_evaluate(cfg: DictConfig) -> dict | None:
    """What ``scripts/train.py`` does, on one process or many: train (unless this config's training is already
    recorded and ``train.resume=true``), tear the process group down, then score the run's benchmarks once, on
    rank 0 (the others exit). A distributed run is scored from its saved adapter in one process on one device;
    a single-process run scores the model in memory. Benchmarks already scored are not redone on a resumed run.
    A complete result is never destroyed (``retrain``): training it again needs ``train.retrain=true``, and the
    retrained run replaces it only once complete. Returns the benchmarks' metrics on rank 0 (None elsewhere or
    when preempted)."""
    staged = retrain.guard(cfg)
    out = _train_and_evaluate(staged)
    retrain.promote(cfg, staged)
    return out


def _train_and_evaluate(cfg: DictConfig) -> dict | None:
    from ..eval.evaluate import evaluate_run

    config = OmegaConf.to_container(cfg, resolve=True)
    done = usable_record(retrain.results_path(cfg), config) if cfg.train.resume else None
    if cfg.method.name == BASE:
        out = _untrained(cfg, record=done is None)
    elif done is not None and (_adapter_dir(cfg) / ("config.json" if cfg.method.name == "fft"
                                                   else "adapter_config.json")).exists():
        validate(cfg)
        # no process group was started: under a launcher the rank is in the environment, and rank 0 alone scores
        rank = int(os.environ.get("RANK", "0"))
        if rank == 0:
            print(f"{cfg.run_id}: training already recorded in {retrain.results_path(cfg)}; scoring what is missing")
        out = {"model": None, "tokenizer": None, "rank": rank, "preempted": False,
               "processes": int(os.environ.get("WORLD_SIZE", "1"))}
    else:
        out = run(cfg)
        if out["rank"] == 0 and not out["preempted"]:
            print(f"adapter: {out['adapter_dir']}  results: {out['results_path']}  final loss: "
                  f"{out['final_loss'] if out['final_loss'] is None else round(out['final_loss'], 4)}")
        _teardown(out.pop("accelerator"))
    if out["rank"] != 0 or out["preempted"] or not (cfg.evaluate_after_training and cfg.eval.benchmarks):
        return None
    already = scored_benchmarks(done) if done is not None else set()
    names = [b for b in cfg.eval.benchmarks if b not in already]
    if not names:
        return {}
    in_memory = out["processes"] == 1 and out["model"] is not None
    return evaluate_run(cfg, model=out["model"] if in_memory else None,
                        tokenizer=out["tokenizer"] if in_memory else None, benchmarks=names)


def _untrained(cfg: DictConfig, record: bool = True) -> dict:
    """``method=base``: the untrained model as a run (nothing trains, no adapter is saved), scored with the same
    protocol as the trained runs; ``record``: write its results file (not when resuming one); rank 0 alone."""
    from ..eval.evaluate import eval_device
    from ..models import load_model_and_tokenizer

    rank = _rank_world()[0]
    out = {"model": None, "tokenizer": None, "rank": rank, "preempted": False, "processes": 1}
    if rank != 0:
        return out
    t0 = time.time()
    plain_cfg = validate(cfg)
    model, tokenizer = load_model_and_tokenizer(cfg.model)
    model = apply_method(model, cfg.method).to(eval_device()).eval()
    if not record:
        return {**out, "model": model, "tokenizer": tokenizer}
    record = new_run_record(run_id=cfg.run_id, experiment=cfg.experiment, scale=cfg.scale.name, model=cfg.paper_model,
                            method=cfg.method.name, config=plain_cfg, trainable_params=0,
                            total_params=count_parameters(model)[1])
    record["train"] = {"steps": 0, "lr": None, "examples": 0, "loss_curve": [], "final_loss": None,
                       "seconds": time.time() - t0, "processes": 1, "adapter_dir": None,
                       "dev_curve": _base_dev_curve(cfg, model, tokenizer)}
    record["base_model"] = cfg.model.name
    write_run_record(retrain.results_path(cfg), record)
    return {**out, "model": model, "tokenizer": tokenizer}


def _base_dev_curve(cfg: DictConfig, model, tokenizer) -> list[dict]:
    """The untrained model's dev loss as a one-point curve at step 0 (``train.dev_loss``), in the precision a run
    trains in: the reference of the fair protocol's validity gate (both arms must beat the base on dev)."""
    records = _dev_records(cfg)
    if records is None:
        return []
    from ..eval.dev import dev_loss

    with precision.autocast(precision.resolve(cfg.train.mixed_precision, next(model.parameters()).device)):
        point = dev_loss(model, tokenizer, records, cfg.model.family, int(cfg.train.max_length))
    print(f"base: dev loss {point['loss']:.4f} ({', '.join(f'{t} {v:.4f}' for t, v in point['per_task'].items())})")
    return [{"step": 0, **point}]


def _teardown(accelerator) -> None:
    """After training: finish the trackers, drop the engine and optimizer (their GPU memory), and end the process
    group on every rank, so that what follows (scoring on rank 0) runs as one plain process."""
    from transformers.integrations import unset_hf_deepspeed_config

    for tracker in accelerator.trackers:
        tracker.finish()
    accelerator.free_memory()
    unset_hf_deepspeed_config()  # else from_pretrained would build the saved model under ZeRO-3's zero.Init again
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


def _barrier() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()


def _rank_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _save_checkpoint(root: Path, step: int, losses: list, state: _TrainState, keep: int) -> None:
    """A checkpoint of the trainable state only: adapters and their optimizer state (every weight for fft). Under
    DeepSpeed the engine's own layout, without the frozen base (``exclude_frozen_parameters``: a ZeRO-2 checkpoint
    of an 8B adapter run would otherwise hold the 16 GB base each time)."""
    rank, world = state.rank, state.nproc

    def write(tmp: Path) -> None:
        if rank == 0:
            from ..results import run_identity

            (tmp / CHECKPOINT_CONFIG).write_text(json.dumps(run_identity(state.config)))
        torch.save(ckpt_io.rng_state(), tmp / f"rng-{rank}.pt")
        if state.deepspeed:
            state.accelerator.save_state(str(tmp / "engine"), exclude_frozen_parameters=True)
        elif rank == 0:
            unwrapped = state.accelerator.unwrap_model(state.model)
            torch.save({"step": step, "trainable": ckpt_io.trainable_state_dict(unwrapped),
                        "optimizer": state.optimizer.state_dict()}, tmp / "state.pt")
        if rank == 0:
            torch.save(state.scheduler.state_dict(), tmp / "scheduler.pt")
            (tmp / "losses.json").write_text(json.dumps(losses))
            (tmp / "dev.json").write_text(json.dumps(state.dev_curve))

    ckpt_io.save(root, step, write, rank=rank, world_size=world, barrier=_barrier, keep=keep)


def _load_checkpoint(path: Path, state: _TrainState) -> tuple[int, list]:
    losses = json.loads((path / "losses.json").read_text())
    step = int(path.name.split("-")[1])
    if state.deepspeed:  # the frozen base is not in the checkpoint: it comes from the model as loaded
        state.accelerator.load_state(str(path / "engine"), load_module_strict=False)
    else:
        saved = torch.load(path / "state.pt", map_location="cpu", weights_only=False)
        unwrapped = state.accelerator.unwrap_model(state.model)
        missing = [n for n, p in unwrapped.named_parameters() if p.requires_grad and n not in saved["trainable"]]
        if missing:
            raise ConfigError(f"checkpoint {path} does not match this run's trainable weights (e.g. {missing[0]}); "
                              "it was written by another config. Resume with the same config or start over.")
        with torch.no_grad():
            for n, p in unwrapped.named_parameters():
                if p.requires_grad:
                    p.copy_(saved["trainable"][n])
        state.optimizer.load_state_dict(saved["optimizer"])
    state.scheduler.load_state_dict(torch.load(path / "scheduler.pt", map_location="cpu", weights_only=False))
    dev_file = path / "dev.json"
    state.dev_curve = [p for p in json.loads(dev_file.read_text()) if p["step"] <= step] if dev_file.exists() else []
    rng_file = path / f"rng-{state.rank}.pt"
    if rng_file.exists():
        ckpt_io.set_rng_state(torch.load(rng_file, map_location="cpu", weights_only=False))
    return step, losses[:step]


def _tracker(cfg) -> str | None:
    """wandb when asked for and installed; offline unless WANDB_MODE says otherwise (no account needed)."""
    if not cfg.train.wandb:
        return None
    try:
        import wandb  # noqa: F401
    except ImportError:
        return None
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")
    return "wandb"
