"""Experiment trackers (``train.loggers``): TensorBoard for real (its event file read back), W&B and MLflow
through stand-in modules, missing extras, and an exact resume that trackers do not disturb."""

import json
import sys
import types
from pathlib import Path

import pytest

from textvae.config import Config
from textvae.errors import ConfigError
from textvae.extras import MissingExtraError
from textvae.training.trainer import Trainer

SETTINGS = {
    "data": {"train": "synthetic", "synthetic_size": 300, "valid_fraction": 0.1},
    "model": {"embedding_size": 16, "hidden_size": 24, "latent_size": 4, "word_dropout": 0.2, "dropout": 0.1},
    "train": {"max_steps": 20, "batch_size": 16, "eval_every": 10, "log_every": 5, "progress": False},
}


def config(*overrides: str) -> Config:
    return Config.from_dict(SETTINGS).apply_overrides(list(overrides))


def records(run: Path) -> list[dict]:
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if not k.endswith("_per_sec")} for r in rows]


def events(run: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0, "tensors": 0, "images": 0})
    acc.Reload()
    return acc


def test_config_takes_a_list_of_known_trackers():
    assert config("train.loggers=[tensorboard, wandb]").train.loggers == ["tensorboard", "wandb"]
    assert config("train.loggers=tensorboard,mlflow").train.loggers == ["tensorboard", "mlflow"]
    assert config("train.loggers=[]").train.loggers == []
    with pytest.raises(ConfigError, match="train.loggers must be one of tensorboard, wandb, mlflow; got 'comet'"):
        config("train.loggers=[comet]")
    assert Config.from_dict(config("train.loggers=[tensorboard]").to_dict()).train.loggers == ["tensorboard"]


def test_tensorboard_event_file_holds_the_runs_figures(tmp_path):
    pytest.importorskip("tensorboard")
    run = tmp_path / "run"
    Trainer(config(f"train.output_dir={run}", "train.loggers=[tensorboard]"), log=lambda s: None).fit()
    acc = events(run)
    tags = acc.Tags()
    for tag in ("train/loss", "train/rec", "train/kl", "train/beta", "train/lr", "train/tokens_per_sec",
                "valid/neg_elbo", "valid/au", "valid/kl_dim/0", "valid/kl_dim/3"):  # fmt: skip
        assert tag in tags["scalars"], tag
    valid = [r for r in records(run) if r["split"] == "valid"]
    got = {e.step: e.value for e in acc.Scalars("valid/neg_elbo")}
    assert got == pytest.approx({r["step"]: r["neg_elbo"] for r in valid}, rel=1e-6)
    assert [e.step for e in acc.Scalars("train/loss")] == [5, 10, 15, 20]
    texts = {t.split("/text_summary")[0] for t in tags["tensors"]}
    assert {"valid/reconstructions", "valid/samples", "config"} <= texts
    sample = acc.Tensors("valid/samples/text_summary")[0].tensor_proto.string_val[0].decode()
    assert sample.strip()
    if "matplotlib" in sys.modules or pytest.importorskip("matplotlib"):
        assert "valid/kl_per_dim" in tags["images"]


def test_trackers_do_not_disturb_an_exact_resume(tmp_path):
    pytest.importorskip("tensorboard")
    plain, tracked = tmp_path / "plain", tmp_path / "tracked"
    Trainer(config(f"train.output_dir={plain}"), log=lambda s: None).fit()
    Trainer(config(f"train.output_dir={tracked}", "train.loggers=[tensorboard]"), log=lambda s: None).fit(stop_at=10)
    Trainer(config(f"train.resume={tracked}", "train.loggers=[tensorboard]"), log=lambda s: None).fit()
    assert records(tracked) == records(plain)  # the examples sent at validation consume no training randomness
    steps = [e.step for e in events(tracked).Scalars("train/loss")]
    assert steps == [5, 10, 15, 20]  # the resume purged nothing twice and drew nothing twice


class _Recorder:
    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        def call(*args, **kwargs):
            self.calls.append((name, args, kwargs))
            return self

        return call


def test_wandb_and_mlflow_receive_scalars_text_and_are_closed(tmp_path, monkeypatch):
    wandb, mlflow = _Recorder(), _Recorder()
    monkeypatch.setitem(
        sys.modules, "wandb", types.SimpleNamespace(init=wandb.init, Table=wandb.Table, Image=wandb.Image)
    )
    monkeypatch.setitem(sys.modules, "mlflow", mlflow)
    run = tmp_path / "my-run"
    Trainer(config(f"train.output_dir={run}", "train.loggers=[wandb, mlflow]"), log=lambda s: None).fit()
    init = next(c for c in wandb.calls if c[0] == "init")
    assert (
        init[2]["name"] == "my-run" and init[2]["resume"] == "allow" and init[2]["config"]["train"]["max_steps"] == 20
    )
    logged = [c for c in wandb.calls if c[0] == "log"]
    assert any("valid/neg_elbo" in c[1][0] and c[2]["step"] == 10 for c in logged)
    assert wandb.calls[-1][0] == "finish"
    names = [c[0] for c in mlflow.calls]
    assert names[0] == "start_run" and "log_params" in names and names[-1] == "end_run"
    metrics = [c for c in mlflow.calls if c[0] == "log_metrics"]
    assert any("train/loss" in c[1][0] and c[2]["step"] == 5 for c in metrics)
    assert any(c[0] == "log_text" and "valid/samples/step_0000010" in c[1][1] for c in mlflow.calls)


def test_a_tracker_that_fails_later_is_switched_off_not_the_run(tmp_path, monkeypatch):
    pytest.importorskip("tensorboard")
    from textvae.training import loggers

    def broken(self, step, values):
        raise OSError("network down")

    monkeypatch.setattr(loggers.TensorBoardTracker, "scalars", broken)
    lines: list[str] = []
    run = tmp_path / "run"
    Trainer(config(f"train.output_dir={run}", "train.loggers=[tensorboard]"), log=lines.append).fit()
    assert sum("tensorboard failed (OSError: network down); it is switched off" in line for line in lines) == 1
    assert (run / "best").is_dir()


def test_a_missing_tracker_package_names_its_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb -> ImportError
    with pytest.raises(MissingExtraError, match=r"train.loggers=\[wandb\] needs wandb.*pip install 'textvae\[wandb\]'"):
        Trainer(config(f"train.output_dir={tmp_path / 'r'}", "train.loggers=[wandb]"), log=lambda s: None).fit()
