"""Fitting the schedules to a time budget (train.fit_to_time, textvae.training.budget)."""

import json

import pytest
from test_training import tiny_config

from textvae.config import TrainConfig
from textvae.errors import ConfigError
from textvae.training import budget
from textvae.training.budget import fitted_horizon, schedule_view
from textvae.training.checkpoint import load_trainer_state
from textvae.training.schedules import lr_at
from textvae.training.trainer import Trainer


def test_the_horizon_is_what_fits_at_the_pace_so_far():
    # 100 steps in 60 s: 0.6 s per step; 10 minutes at 95% is 570 s, 950 steps.
    assert fitted_horizon(100, 60.0, 10, 5000) == 950
    assert fitted_horizon(100, 60.0, 10, 5000, margin=1.0) == 1000
    assert fitted_horizon(100, 60.0, 10, 800) == 800  # it fits: as configured
    assert fitted_horizon(100, 600.0, 1, 5000) == 100  # already past the budget: never below the steps taken
    assert fitted_horizon(0, 0.0, 10, 5000) == 5000  # nothing measured: nothing changed


def test_the_schedules_read_the_fitted_horizon_as_max_steps():
    cfg = TrainConfig(max_steps=1000, lr=1.0, lr_schedule="cosine", warmup_steps=10)
    view = schedule_view(cfg, 400)
    assert view.max_steps == 400 and cfg.max_steps == 1000
    assert lr_at(400, view) == pytest.approx(0.0, abs=1e-12) and lr_at(400, cfg) > 0.5
    assert lr_at(205, view) == pytest.approx(0.5)  # halfway through the decay after warm-up
    assert schedule_view(cfg, 0) is cfg and schedule_view(cfg, 1000) is cfg  # not fitted / fits


def test_fit_to_time_needs_a_budget(tmp_path):
    with pytest.raises(ConfigError, match="train.max_minutes"):
        Trainer(tiny_config(tmp_path / "r", **{"train.fit_to_time": True}), log=lambda s: None)


def test_a_run_that_does_not_fit_ends_its_schedules_where_the_budget_does_and_a_resume_keeps_that(
    tmp_path, monkeypatch
):
    calls = []

    def fake(step, elapsed, minutes, max_steps, margin=budget.FIT_MARGIN):
        calls.append((step, max_steps))
        return 10  # the pace says 10 of the 30 steps fit

    monkeypatch.setattr(budget, "fitted_horizon", fake)
    run, messages = tmp_path / "run", []
    overrides = {"train.fit_to_time": True, "train.max_minutes": 60, "train.max_steps": 30, "train.eval_every": 4,
                 "train.lr_schedule": "cosine", "train.lr": 0.01}  # fmt: skip
    Trainer(tiny_config(run, **overrides), log=messages.append).fit(stop_at=8)
    assert calls == [(4, 30)]  # fixed once, at the first validation
    assert load_trainer_state(run / "last")["counters"]["horizon"] == 10
    assert any("schedules end at step 10" in m for m in messages)
    Trainer(tiny_config(run, **overrides, **{"train.resume": str(run)}), log=messages.append).fit()
    assert calls == [(4, 30)]  # the resumed run keeps the horizon
    recs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert max(r["step"] for r in recs) == 10  # the run ends with its schedules
    last_lr = [r["lr"] for r in recs if r["split"] == "train"][-1]  # the mean over steps 8 and 9 (0-based)
    cfg = TrainConfig(max_steps=10, lr=0.01, lr_schedule="cosine")
    assert last_lr == pytest.approx((lr_at(8, cfg) + lr_at(9, cfg)) / 2)  # 6.0e-4; over 30 steps it is 8.0e-3
