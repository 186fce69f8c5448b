"""Fitting a run's schedules to its time budget (``train.fit_to_time`` with ``train.max_minutes``).

A config that sets ``max_steps`` for one machine and ``max_minutes`` as a guard trains well there, but on a
machine three times slower the guard stops it a third of the way through a cosine decay, with the learning
rate still near its peak. With ``fit_to_time``, the trainer measures its pace up to the first validation
(validation time included, since later validations cost time too) and, if ``max_steps`` would not fit in
the budget, shortens the run to the steps that do: the learning-rate and β schedules then read that
shorter horizon as ``max_steps``, so their decay completes before the guard. The horizon is fixed once,
kept with the run's counters (a resumed run keeps it), and a run that fits is left as configured.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from textvae.config import TrainConfig
from textvae.errors import ConfigError
from textvae.training.distributed import broadcast_number

if TYPE_CHECKING:
    from textvae.training.trainer import Trainer

#: The share of the budget the fitted horizon plans to use: the rest absorbs pace noise and the final
#: validation and checkpoint, so the guard rarely cuts the last steps of the decay.
FIT_MARGIN = 0.95


def fitted_horizon(step: int, elapsed: float, minutes: float, max_steps: int, margin: float = FIT_MARGIN) -> int:
    """The number of steps that fit in ``margin * minutes`` at the pace of ``step`` steps in ``elapsed``
    seconds, capped at ``max_steps`` and never below ``step`` (the steps already taken)."""
    if step < 1 or elapsed <= 0:
        return max_steps
    return max(step, min(max_steps, int(margin * 60 * minutes * step / elapsed)))


def schedule_view(cfg: TrainConfig, horizon: int) -> TrainConfig:
    """``cfg`` as the schedules should read it: ``max_steps`` replaced by a fitted ``horizon`` (0: none)."""
    return dataclasses.replace(cfg, max_steps=horizon) if 0 < horizon < cfg.max_steps else cfg


def check_budget(cfg: TrainConfig) -> None:
    """``fit_to_time`` needs a budget to fit to."""
    if cfg.fit_to_time and not cfg.max_minutes:
        raise ConfigError("train.fit_to_time fits the schedules to a time budget: set train.max_minutes too")


def fit_schedule(trainer: Trainer, elapsed: float) -> None:
    """After a validation of a ``fit_to_time`` run whose horizon is not fixed yet: fix
    ``trainer.state.horizon`` from the pace of the steps so far (``elapsed`` seconds of this invocation,
    validations included); rank 0's clock decides for every rank, as for the time guard."""
    tc, st = trainer.config.train, trainer.state
    if not tc.fit_to_time or st.horizon:
        return
    elapsed = broadcast_number(elapsed, trainer.dist, trainer.device)
    st.horizon = fitted_horizon(st.step, elapsed, tc.max_minutes, tc.max_steps)
    if st.horizon < tc.max_steps:
        trainer.log(
            f"train.fit_to_time: {tc.max_steps} steps would not fit in train.max_minutes={tc.max_minutes} at "
            f"{elapsed / st.step:.3f} s/step; the schedules end at step {st.horizon}"
        )
