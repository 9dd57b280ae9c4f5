"""The lr schedule's horizon (train.schedule_steps): a run stopped at step s of a longer schedule steps with the lrs
that the long run uses at its steps 1..s; the formula is written out here as the reference."""

import pytest
import torch
from omegaconf import OmegaConf

from idlora.errors import ConfigError
from idlora.training.optim import build as _optimizer
from idlora.training.optim import horizon as _horizon


def _tc(**kw):
    base = {"optimizer": "adamw", "betas": [0.9, 0.999], "weight_decay": 0.0, "warmup_steps": 4,
            "lr_scheduler": "linear", "schedule_steps": None}
    return OmegaConf.create({**base, **kw})


def _lrs(tc, total_steps, steps):
    p = torch.nn.Parameter(torch.zeros(2))
    opt, sched = _optimizer(tc, [p], 1e-3, _horizon(tc, total_steps))
    out = []
    for _ in range(steps):
        out.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    return out


def reference(step, lr=1e-3, warmup=4, horizon=20):
    """Linear warm-up to lr over `warmup` steps, then linear decay to 0 at `horizon` (0-based step)."""
    return lr * (step + 1) / warmup if step < warmup else lr * (horizon - step) / (horizon - warmup)


def test_a_run_stopped_early_follows_the_long_schedule():
    short = _lrs(_tc(schedule_steps=20), total_steps=8, steps=8)
    full = _lrs(_tc(), total_steps=20, steps=20)
    assert short == pytest.approx(full[:8])
    assert full == pytest.approx([reference(s) for s in range(20)])
    # without a horizon the 8-step run decays to 0 at its own end instead
    own = _lrs(_tc(), total_steps=8, steps=8)
    assert own == pytest.approx([reference(s, horizon=8) for s in range(8)])
    assert own[5] < short[5]


def test_a_horizon_shorter_than_the_run_is_refused():
    with pytest.raises(ConfigError, match="schedule_steps=5 is shorter than the run's 8 steps"):
        _horizon(_tc(schedule_steps=5), 8)
