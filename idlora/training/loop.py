"""The training loop: one method, one experiment, any number of devices (plain Accelerate, nanoGPT-style).

    run(cfg)  # cfg from idlora.config.compose([...]); scripts/train.py goes through training.pipeline

Order of work, cheapest checks first (``setup``): the config and the method are validated on a meta-device copy of
the model (no weights), the data is loaded, and only then are the weights loaded and the adapter built (PMRC on the
main process first, then every rank reads the cached indices). Each optimizer step sees ``batch_size`` examples —
split over the processes and over micro-batches by gradient accumulation — taken from a per-epoch permutation seeded
by (seed, epoch), so the order does not depend on the number of devices or on resuming. Checkpoints
(``checkpoint``) hold the trainable weights, optimizer, scheduler, RNG states and loss history;
``train.resume=true`` continues from the newest complete one and ends with the same adapter. What a method needs
beyond that comes from its recipe (``recipes``); the processes from ``distributed``; the optimizer and schedule from
``optim``; the results file from ``record``.
"""

from __future__ import annotations

import shutil
import time

import torch
from accelerate.utils import set_seed
from omegaconf import DictConfig
from tqdm.auto import tqdm

from ..data import SFTCollator, load_dataset_for
from ..eval.dev import describe, dev_loss
from ..methods import count_parameters
from ..results import run_paths
from . import checkpoint, optim, record, setup
from .distributed import accelerator_for, barrier, zero_stage
from .recipes import recipe_for, train_lr


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


class TrainState:
    """What the loop, the checkpoints and the final save share."""

    def __init__(self, accelerator, model, optimizer, scheduler, rank, nproc, config, dev_records):
        self.accelerator, self.model, self.optimizer, self.scheduler = accelerator, model, optimizer, scheduler
        self.zero_stage, self.rank, self.nproc, self.config = zero_stage(accelerator), rank, nproc, config
        self.dev_records: list[dict] | None = dev_records  # held-out dev items (train.dev_loss), scored at checkpoints
        self.dev_curve: list[dict] = []

    @property
    def deepspeed(self) -> bool:
        return self.zero_stage is not None


def run(cfg: DictConfig, plan: setup.Plan | None = None) -> dict:
    """Train ``cfg.method`` on ``cfg.data`` and save the adapter; returns a summary (also in the results file).
    ``plan``: the run already validated (``setup.validate``); validated here otherwise.

    ``summary["preempted"]`` is true when a stop was requested (``results.STOP_FILE``, e.g. by Slurm's warning
    signal): the run then saved a checkpoint and stopped without writing its results; ``train.resume=true`` continues
    it."""
    t0, tc, paths, recipe = time.time(), cfg.train, run_paths(cfg), recipe_for(cfg.method)
    plan = plan or setup.validate(cfg)
    recipe.before(cfg, run)  # e.g. LoRI-S: its LoRI-D, trained (or reused) first
    accelerator, nproc, rank, accum = accelerator_for(cfg)
    set_seed(cfg.seed)
    if rank == 0:
        paths.stop.unlink(missing_ok=True)  # a stop request is for the job that received it
    records = load_dataset_for(cfg.data, scale=cfg.scale.name, seed=cfg.seed)
    dev_records = setup.dev_records(cfg)
    model, tokenizer = setup.build_model(cfg, plan, rank)
    prepared = recipe.prepare(cfg, model)
    trainable, total = count_parameters(model)
    if prepared is not None:  # e.g. LoRI's masked entries of B: parameters that never change; count what trains
        trainable -= prepared.get("masked_entries", 0)
    examples = setup.examples(cfg, records, tokenizer)
    total_steps = int(tc.max_steps) if tc.max_steps else (len(examples) // tc.batch_size) * int(tc.epochs)
    params = [p for p in model.parameters() if p.requires_grad]
    lr = train_lr(cfg)
    own = recipe.optimizer(cfg, model, lr, deepspeed=accelerator.state.deepspeed_plugin is not None)
    optimizer, scheduler = optim.build(tc, params, lr, optim.horizon(tc, total_steps), optimizer=own)
    model, optimizer = accelerator.prepare(model, optimizer)
    state = TrainState(accelerator, model, optimizer, scheduler, rank, nproc, plan.config, dev_records)
    start_step, losses = 0, []
    found = checkpoint.latest(paths.checkpoints) if tc.resume else None
    if found is not None:
        start_step, losses = checkpoint.load_state(found, state)
        accelerator.print(f"resumed from {found} (step {start_step}/{total_steps})")
    if accelerator.log_with:
        paths.out_dir.mkdir(parents=True, exist_ok=True)
        accelerator.init_trackers("idlora", config=plan.config,
                                  init_kwargs={"wandb": {"name": cfg.run_id, "dir": str(paths.out_dir)}})
    stopped = _train_loop(cfg, state, examples, tokenizer, params, start_step, total_steps, losses)
    summary = record.summary(state, cfg, steps=total_steps, lr=lr, examples=len(examples), losses=losses,
                             seconds=time.time() - t0, accum=accum)
    out = {"tokenizer": tokenizer, "results_path": paths.results, "accelerator": accelerator, "rank": rank}
    if stopped:
        return {"model": None, **out, "preempted": True, **summary}
    if prepared is not None:
        summary[cfg.method.name] = prepared
    unwrapped = _save_final(cfg, state, tokenizer)
    if rank == 0:
        record.write(cfg, plan.config, summary, trainable=trainable, total=total)
        shutil.rmtree(paths.checkpoints, ignore_errors=True)  # the weights and the record hold what the run needs now
    barrier()
    return {"model": unwrapped, **out, "preempted": False, **summary}


def _train_loop(cfg, state: TrainState, examples, tokenizer, params, start_step, total_steps, losses) -> bool:
    """Optimizer steps ``start_step .. total_steps``; True if it stopped early on a stop request (checkpoint saved)."""
    tc, acc, rank, nproc, paths = cfg.train, state.accelerator, state.rank, state.nproc, run_paths(cfg)
    collate = SFTCollator(tokenizer, pack=tc.packing)
    bar = tqdm(total=total_steps, initial=start_step, desc=f"train {cfg.run_id}", unit="step", disable=rank != 0)
    state.model.train()
    for step, batch_idx in global_batches(len(examples), tc.batch_size, cfg.seed, total_steps):
        if step < start_step:
            continue
        mine = batch_idx[rank::nproc]  # this process's share of the global batch
        step_loss = _step(state, tc, [examples[i] for i in mine], collate, params)
        mean_loss, stop = _reduce(state, step_loss, rank == 0 and paths.stop.exists())
        losses.append(mean_loss)
        bar.update(1)
        lr = state.scheduler.get_last_lr()[0]
        bar.set_postfix(loss=f"{mean_loss:.4f}", lr=f"{lr:.2e}")
        if acc.log_with and (step + 1) % tc.log_steps == 0:
            acc.log({"train/loss": mean_loss, "train/lr": lr}, step=step + 1)
        done = step + 1
        _dev_point(cfg, state, tokenizer, done, total_steps)
        if done < total_steps and ((tc.save_steps and done % tc.save_steps == 0) or stop):
            checkpoint.save_state(paths.checkpoints, done, losses, state, keep=int(tc.keep_checkpoints))
        if stop and done < total_steps:
            acc.print(f"stop requested ({paths.stop}): checkpoint step-{done} saved; resume with train.resume=true")
            bar.close()
            return True
    bar.close()
    return False


def _step(state: TrainState, tc, batch_examples: list[dict], collate, params) -> float:
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


def _dev_point(cfg: DictConfig, state: TrainState, tokenizer, done: int, total_steps: int) -> None:
    """At each checkpoint step (``train.save_steps``) and the last, the dev items' teacher-forced loss
    (``idlora.eval.dev``) goes to the run's learning curve (``dev_curve``). Every rank computes it (a ZeRO-3 forward
    needs them all); the model returns to training mode and no random number is drawn, so training is unchanged."""
    tc = cfg.train
    if state.dev_records is None or not (done == total_steps or (tc.save_steps and done % tc.save_steps == 0)):
        return
    point = dev_loss(state.model, tokenizer, state.dev_records, cfg.model.family, int(tc.max_length))
    state.dev_curve.append({"step": done, **point})
    state.accelerator.print(f"step {done}: {describe(point)}")


def _reduce(state: TrainState, step_loss: float, stop: bool) -> tuple[float, bool]:
    """The loss averaged over processes, and whether any process was asked to stop (one collective for both)."""
    if state.nproc == 1:
        return step_loss, stop
    t = torch.tensor([step_loss, float(stop)], device=state.accelerator.device)
    torch.distributed.all_reduce(t)
    return t[0].item() / state.nproc, bool(t[1].item() > 0)


def _save_final(cfg: DictConfig, state: TrainState, tokenizer):
    """Save the weights (``run_paths(cfg).weights``: the adapter, or the whole model for fft) on rank 0; returns the
    unwrapped model. Only ZeRO-3 needs every rank to gather the shards; under ZeRO-2 and DDP each rank holds the
    whole model, so rank 0 alone saves it."""
    unwrapped = state.accelerator.unwrap_model(state.model)
    weights = run_paths(cfg).weights
    if state.zero_stage == 3:
        full = state.accelerator.get_state_dict(state.model)  # a collective: every rank calls it
        if state.rank == 0:
            unwrapped.save_pretrained(weights, state_dict=full)
    elif state.rank == 0:
        unwrapped.save_pretrained(weights)
    if state.rank == 0:
        tokenizer.save_pretrained(weights)
    return unwrapped
