"""β (KL weight) and learning-rate schedules: pure functions of the optimizer step (0-based)."""

from __future__ import annotations

import math

from textvae.config import TrainConfig


def beta_at(step: int, cfg: TrainConfig) -> float:
    """KL weight at ``step``: 0 during autoencoder pretraining (``ae_pretrain_steps``), then, counting steps
    from its end:

    - ``constant``: ``beta_max``.
    - ``linear``: rises from 0 to ``beta_max`` over ``beta_warmup_steps``, then stays.
    - ``logistic`` (Bowman et al. 2016): ``beta_max / (1 + exp(-k (step - w/2)))`` with ``w`` the warm-up
      length and ``k = 2 ln(99) / w`` so that it is 1% of ``beta_max`` at step 0 and 99% at step ``w``.
    - ``cyclical`` (Fu et al. 2019): ``max_steps`` split into ``beta_cycles`` equal cycles; in each, β rises
      linearly from 0 to ``beta_max`` over the first ``beta_cycle_ratio`` of the cycle, then stays.
    """
    if step < cfg.ae_pretrain_steps:
        return 0.0
    step -= cfg.ae_pretrain_steps
    b, w = cfg.beta_max, max(cfg.beta_warmup_steps, 1)
    kind = cfg.beta_schedule
    if kind == "constant":
        return b
    if kind == "linear":
        return b * min(1.0, step / w)
    if kind == "logistic":
        k = 2.0 * math.log(99.0) / w
        return b / (1.0 + math.exp(-k * (step - w / 2)))
    if kind == "cyclical":
        period = max((cfg.max_steps - cfg.ae_pretrain_steps) / max(cfg.beta_cycles, 1), 1.0)
        tau = (step % period) / period
        return b * min(1.0, tau / max(cfg.beta_cycle_ratio, 1e-8))
    raise ValueError(f"unknown beta schedule {kind!r}")


def lr_at(step: int, cfg: TrainConfig, decays: int = 0) -> float:
    """Learning rate at ``step``: linear warm-up over ``warmup_steps``, then ``constant``, ``linear``
    decay to 0 at ``max_steps``, ``cosine`` decay to 0 at ``max_steps``, or ``plateau``: ``lr`` times
    ``lr_decay_factor ** decays``, ``decays`` being the validation plateaus so far (a function of the step
    and that count, which the trainer keeps with its resumable state)."""
    if cfg.warmup_steps > 0 and step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.lr_schedule == "constant":
        return cfg.lr
    if cfg.lr_schedule == "plateau":
        return cfg.lr * cfg.lr_decay_factor**decays
    span = max(cfg.max_steps - cfg.warmup_steps, 1)
    progress = min(max(step - cfg.warmup_steps, 0) / span, 1.0)
    if cfg.lr_schedule == "linear":
        return cfg.lr * (1.0 - progress)
    if cfg.lr_schedule == "cosine":
        return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * progress))
    raise ValueError(f"unknown learning-rate schedule {cfg.lr_schedule!r}")
