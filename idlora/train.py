"""The training loop: one method, one experiment, any number of devices (plain Accelerate, nanoGPT-style).

    run(cfg)  # cfg from idlora.config.compose([...]) or scripts/train.py

Order of work, cheapest checks first: the config and the method are validated on a meta-device copy of the
model (no weights), the data is loaded, and only then are the weights loaded and the adapter built (PMRC on
the main process first, then every rank reads the cached indices). Each optimizer step sees ``batch_size``
examples — split over the processes and over micro-batches by gradient accumulation — taken from a per-epoch
permutation seeded by (seed, epoch), so the order does not depend on the number of devices or on resuming.
Checkpoints (``idlora.checkpoint``) hold the trainable weights, optimizer, scheduler, RNG states and loss
history; ``train.resume=true`` continues from the newest complete one and ends with the same adapter.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from . import checkpoint as ckpt_io
from .config import effective_lr
from .errors import ConfigError
from .methods import apply_method, build_peft_config, count_parameters


def _meta_check(cfg: DictConfig) -> None:
    """Build the adapter on a meta-device copy of the model: a wrong target, k*r > d_out or an odd d_out with
    Rank Boosting fails here, before any weight is loaded or any data is read. The model's shape comes from
    its shipped ``configs/hf/<name>/config.json`` (no download), or from the tiny model itself."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from .config import CONFIG_DIR

    shipped = CONFIG_DIR / "hf" / cfg.model.name / "config.json"
    if shipped.exists():
        hf_config = AutoConfig.from_pretrained(shipped.parent)
    elif cfg.model.source == "tiny":
        from .models import load_model_and_tokenizer

        hf_config = load_model_and_tokenizer(cfg.model)[0].config
    else:
        return  # an unknown local model: the real build checks the same things right after loading
    with torch.device("meta"):
        apply_method(AutoModelForCausalLM.from_config(hf_config), cfg.method)


def _mixed_precision(setting: str) -> str:
    if setting != "auto":
        return setting
    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"


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


def _previous_identity(path: Path) -> dict | None:
    """The run identity a results file records, or None if there is none (missing or unreadable: such a file is
    replaced atomically by the run)."""
    if not path.exists():
        return None
    try:
        previous = json.loads(path.read_text()).get("config")
    except (OSError, ValueError):
        return None
    from .results import run_identity

    return run_identity(previous) if previous else None


def _check_previous_results(path: Path, config: dict) -> None:
    from .results import run_identity

    previous, config = _previous_identity(path), run_identity(config)
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


def _check_checkpoint_config(ckpt_root: Path, config: dict) -> None:
    """Resume only from a checkpoint written by this run's config: its optimizer state carries the old lr and
    its weights the old method, so a stale one would silently continue another experiment."""
    from .results import run_identity

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


def run(cfg: DictConfig) -> dict:
    """Train ``cfg.method`` on ``cfg.data`` and save the adapter; returns a summary (also in the results file)."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm

    from .data import SFTCollator, load_dataset_for, tokenize_example
    from .models import load_model_and_tokenizer
    from .results import new_run_record, write_run_record

    t0 = time.time()
    plain_cfg = OmegaConf.to_container(cfg, resolve=True)
    build_peft_config(cfg.method)  # a bad method value fails before anything else
    if cfg.get("evaluate_after_training") and cfg.eval.benchmarks:
        from .evaluate import check_eval_config

        check_eval_config(cfg.eval)  # so does a misspelt benchmark, before hours of training
    tc = cfg.train
    out_dir = Path(cfg.output_root) / cfg.run_id
    results_path = Path(cfg.results_dir) / f"{cfg.run_id}.json"
    if not tc.resume:
        _check_previous_results(results_path, plain_cfg)
    else:
        _check_checkpoint_config(out_dir / "checkpoints", plain_cfg)
    _meta_check(cfg)

    log_with = _tracker(cfg)
    accelerator = Accelerator(mixed_precision=_mixed_precision(tc.mixed_precision), log_with=log_with)
    nproc, rank = accelerator.num_processes, accelerator.process_index
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        # Accelerate reports 1 process for DeepSpeed on CPU (gloo); the process group knows the truth.
        nproc, rank = torch.distributed.get_world_size(), torch.distributed.get_rank()
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
    set_seed(cfg.seed)

    records = load_dataset_for(cfg.data, scale=cfg.scale.name, seed=cfg.seed)
    model, tokenizer = load_model_and_tokenizer(cfg.model)
    if rank != 0:
        _barrier()  # rank 0 clusters and caches first; the others then read its files
    model = apply_method(model, cfg.method, seed=cfg.seed)
    if rank == 0:
        _barrier()
    lori_info = None
    if cfg.method.name == "lori" and float(cfg.method.sparsity) > 0:
        lori_info = _calibrate_lori(cfg, model)
        set_seed(cfg.seed)  # LoRI-S draws the same dropout whether LoRI-D was just trained here or reused
    if tc.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        if hasattr(model, "enable_input_require_grads"):
            model.enable_input_require_grads()
    trainable, total = count_parameters(model)
    if lori_info is not None:  # masked entries of B are parameters that never change: count what trains
        trainable -= lori_info["masked_entries"]
    examples = [tokenize_example(r, tokenizer, cfg.model.family, tc.max_length) for r in records]
    examples = [e for e in examples if e is not None]
    if len(examples) < tc.batch_size:
        raise ConfigError(f"only {len(examples)} usable training examples for batch_size={tc.batch_size}; "
                          "supply more data or lower train.batch_size.")
    collate = SFTCollator(tokenizer)
    steps_per_epoch = len(examples) // tc.batch_size
    total_steps = int(tc.max_steps) if tc.max_steps else steps_per_epoch * int(tc.epochs)

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=effective_lr(cfg), betas=tuple(tc.betas), weight_decay=tc.weight_decay)
    warmup = int(tc.warmup_steps)

    def lr_lambda(step: int) -> float:  # linear warm-up, then linear decay to 0 (HF's "linear")
        if step < warmup:
            return (step + 1) / max(1, warmup)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda)
    model, optimizer = accelerator.prepare(model, optimizer)
    deepspeed = accelerator.state.deepspeed_plugin is not None

    ckpt_root = out_dir / "checkpoints"
    start_step, losses = 0, []
    if tc.resume:
        found = ckpt_io.latest(ckpt_root)
        if found is not None:
            start_step, losses = _load_checkpoint(found, accelerator, model, optimizer, scheduler, deepspeed, rank)
            accelerator.print(f"resumed from {found} (step {start_step}/{total_steps})")

    tracker = None
    if log_with:
        out_dir.mkdir(parents=True, exist_ok=True)
        accelerator.init_trackers("idlora", config=plain_cfg,
                                  init_kwargs={"wandb": {"name": cfg.run_id, "dir": str(out_dir)}})
        tracker = log_with
    bar = tqdm(total=total_steps, initial=start_step, desc=f"train {cfg.run_id}", unit="step",
               disable=rank != 0)
    model.train()
    for step, batch_idx in global_batches(len(examples), tc.batch_size, cfg.seed, total_steps):
        if step < start_step:
            continue
        mine = batch_idx[rank::nproc]  # this process's share of the global batch
        micro = [mine[i:i + tc.micro_batch_size] for i in range(0, len(mine), tc.micro_batch_size)]
        step_loss = 0.0
        for idx in micro:  # len(micro) == accum: the last micro-batch is the accumulation boundary
            batch = {k: v.to(accelerator.device) for k, v in collate([examples[i] for i in idx]).items()}
            with accelerator.accumulate(model):  # no gradient sync until the boundary; loss scaled by 1/accum
                loss = model(**batch).loss
                accelerator.backward(loss)
                if accelerator.sync_gradients and tc.max_grad_norm and not deepspeed:
                    accelerator.clip_grad_norm_(params, tc.max_grad_norm)
                optimizer.step()  # a no-op before the boundary
                optimizer.zero_grad(set_to_none=True)
            step_loss += loss.detach().float().item() / len(micro)
        scheduler.step()
        mean_loss = step_loss
        if nproc > 1:
            t = torch.tensor(step_loss, device=accelerator.device)
            torch.distributed.all_reduce(t)
            mean_loss = t.item() / nproc
        losses.append(mean_loss)
        bar.update(1)
        bar.set_postfix(loss=f"{mean_loss:.4f}", lr=f"{scheduler.get_last_lr()[0]:.2e}")
        if tracker is not None and (step + 1) % tc.log_steps == 0:
            accelerator.log({"train/loss": mean_loss, "train/lr": scheduler.get_last_lr()[0]}, step=step + 1)
        done = step + 1
        if tc.save_steps and done % tc.save_steps == 0 and done < total_steps:
            _save_checkpoint(ckpt_root, done, losses, accelerator, model, optimizer, scheduler, deepspeed,
                             keep=int(tc.keep_checkpoints), config=plain_cfg)
    bar.close()

    unwrapped = accelerator.unwrap_model(model)
    adapter_dir = out_dir / ("model" if cfg.method.name == "fft" else "adapter")
    if deepspeed:
        state = accelerator.get_state_dict(model)  # gathers ZeRO-3 shards (a collective: every rank calls it)
        if rank == 0:
            unwrapped.save_pretrained(adapter_dir, state_dict=state)
    elif rank == 0:
        unwrapped.save_pretrained(adapter_dir)
    if rank == 0:
        tokenizer.save_pretrained(adapter_dir)
    summary = {"steps": total_steps, "lr": effective_lr(cfg), "examples": len(examples), "loss_curve": losses,
               "final_loss": losses[-1] if losses else None, "seconds": time.time() - t0,
               "processes": nproc, "grad_accum": accum, "adapter_dir": str(adapter_dir)}
    if lori_info is not None:
        summary["lori"] = lori_info
    if rank == 0:
        record = new_run_record(run_id=cfg.run_id, experiment=cfg.experiment, scale=cfg.scale.name,
                                model=cfg.paper_model, method=cfg.method.name, config=plain_cfg,
                                trainable_params=trainable, total_params=total)
        record["train"] = summary
        record["base_model"] = cfg.model.name
        write_run_record(results_path, record)
    if tracker is not None:
        accelerator.end_training()
    _barrier()
    return {"model": unwrapped, "tokenizer": tokenizer, "results_path": results_path, **summary}


def _calibrate_lori(cfg: DictConfig, model) -> dict:
    """LoRI-S needs masks from a trained LoRI-D: train (or reuse) that dense run of the same config, with
    ``sparsity=0``, under ``<run dir>/calibration``, then set model-wise magnitude masks on ``model``."""
    from safetensors import safe_open

    from .results import run_identity
    from .tuners.lori import magnitude_masks

    out_dir = Path(cfg.output_root) / cfg.run_id
    dense = OmegaConf.to_container(cfg, resolve=True)
    dense["method"]["sparsity"] = 0.0
    dense.update(run_id=f"{cfg.run_id}.lori_d", output_root=str(out_dir / "calibration"),
                 results_dir=str(out_dir / "calibration"), evaluate_after_training=False)
    record_path = Path(dense["results_dir"]) / f"{dense['run_id']}.json"
    adapter_file = Path(dense["output_root"]) / dense["run_id"] / "adapter" / "adapter_model.safetensors"
    if not (adapter_file.exists() and _previous_identity(record_path) == run_identity(dense)):
        run(OmegaConf.create(dense))
    prefix, suffix = "base_model.model.", ".lori_B.weight"
    with safe_open(str(adapter_file), framework="pt") as f:
        b = {key[len(prefix):-len(suffix)]: f.get_tensor(key) for key in f.keys() if key.endswith(suffix)}
    masks = magnitude_masks(b, float(cfg.method.sparsity))
    tuner = model.base_model
    tuner.set_masks(masks)
    kept = sum(int(m.sum()) for m in masks.values())
    entries = sum(m.numel() for m in masks.values())
    return {"calibration_run": str(record_path), "mask_density": kept / entries, "masked_entries": entries - kept}


def _barrier() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()


def _rank_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _save_checkpoint(root, step, losses, accelerator, model, optimizer, scheduler, deepspeed, keep, config=None):
    rank, world = _rank_world()

    def write(tmp: Path) -> None:
        if rank == 0 and config is not None:
            from .results import run_identity

            (tmp / CHECKPOINT_CONFIG).write_text(json.dumps(run_identity(config)))
        torch.save(ckpt_io.rng_state(), tmp / f"rng-{rank}.pt")
        if deepspeed:
            accelerator.save_state(str(tmp / "engine"))
        elif rank == 0:
            torch.save({"step": step, "trainable": ckpt_io.trainable_state_dict(accelerator.unwrap_model(model)),
                        "optimizer": optimizer.state_dict()}, tmp / "state.pt")
        if rank == 0:
            torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
            (tmp / "losses.json").write_text(json.dumps(losses))

    ckpt_io.save(root, step, write, rank=rank, world_size=world, barrier=_barrier, keep=keep)


def _load_checkpoint(path: Path, accelerator, model, optimizer, scheduler, deepspeed, rank):
    losses = json.loads((path / "losses.json").read_text())
    step = int(path.name.split("-")[1])
    if deepspeed:
        accelerator.load_state(str(path / "engine"))
    else:
        state = torch.load(path / "state.pt", map_location="cpu", weights_only=False)
        unwrapped = accelerator.unwrap_model(model)
        missing = [n for n, p in unwrapped.named_parameters() if p.requires_grad and n not in state["trainable"]]
        if missing:
            raise ConfigError(f"checkpoint {path} does not match this run's trainable weights (e.g. {missing[0]}); "
                              "it was written by another config. Resume with the same config or start over.")
        with torch.no_grad():
            for n, p in unwrapped.named_parameters():
                if p.requires_grad:
                    p.copy_(state["trainable"][n])
        optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(torch.load(path / "scheduler.pt", map_location="cpu", weights_only=False))
    rng_file = path / f"rng-{rank}.pt"
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
