import math

import pytest

from textvae.config import TrainConfig
from textvae.training.schedules import beta_at, lr_at


def cfg(**kw) -> TrainConfig:
    return TrainConfig(**kw)


def test_constant_beta():
    c = cfg(beta_schedule="constant", beta_max=0.5)
    assert [beta_at(s, c) for s in (0, 10, 10_000)] == [0.5, 0.5, 0.5]


def test_linear_beta():
    c = cfg(beta_schedule="linear", beta_warmup_steps=100, beta_max=1.0)
    assert beta_at(0, c) == 0.0
    assert beta_at(50, c) == pytest.approx(0.5)
    assert beta_at(100, c) == 1.0
    assert beta_at(5000, c) == 1.0


def test_logistic_beta():
    c = cfg(beta_schedule="logistic", beta_warmup_steps=1000)
    assert beta_at(500, c) == pytest.approx(0.5)
    assert beta_at(0, c) == pytest.approx(0.01)
    assert beta_at(1000, c) == pytest.approx(0.99)
    assert beta_at(250, c) < beta_at(400, c) < beta_at(600, c)


def test_cyclical_beta():
    c = cfg(beta_schedule="cyclical", max_steps=1000, beta_cycles=4, beta_cycle_ratio=0.5)
    # period 250: rising over the first 125 steps of each cycle, then flat at 1.
    assert beta_at(0, c) == 0.0
    assert beta_at(62.5, c) == pytest.approx(0.5)
    assert beta_at(125, c) == 1.0
    assert beta_at(200, c) == 1.0
    assert beta_at(250, c) == 0.0
    assert beta_at(250 + 25, c) == pytest.approx(0.2)
    assert beta_at(999, c) == 1.0


def test_lr_schedules():
    c = cfg(lr=1.0, warmup_steps=10, max_steps=110, lr_schedule="linear")
    assert lr_at(0, c) == pytest.approx(0.1)
    assert lr_at(9, c) == pytest.approx(1.0)
    assert lr_at(60, c) == pytest.approx(0.5)
    assert lr_at(110, c) == 0.0
    c.lr_schedule = "cosine"
    assert lr_at(60, c) == pytest.approx(0.5)
    assert lr_at(10, c) == pytest.approx(1.0)
    c.lr_schedule = "constant"
    assert lr_at(100, c) == 1.0


def test_unknown_schedule_raises():
    with pytest.raises(ValueError):
        beta_at(0, cfg(beta_schedule="nope"))
    assert math.isfinite(beta_at(10**9, cfg(beta_schedule="logistic")))
