"""Faults a long run must survive: kill -9, SIGTERM, NaNs, damaged checkpoints."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from textvae.config import Config
from textvae.errors import ModelDirError, TextVAEError
from textvae.model.vae import TextVAE
from textvae.training.checkpoint import find_checkpoint, load_trainer_state
from textvae.training.trainer import Trainer

SETTINGS = {
    "data": {"train": "synthetic", "synthetic_size": 300, "valid_fraction": 0.1},
    "model": {"embedding_size": 16, "hidden_size": 24, "latent_size": 4, "word_dropout": 0.2, "dropout": 0.1},
    "train": {
        "max_steps": 60,
        "batch_size": 16,
        "eval_every": 20,
        "checkpoint_every": 5,
        "log_every": 5,
        "progress": False,
    },
}


def write_config(tmp_path: Path) -> Path:
    p = tmp_path / "cfg.yaml"
    Config.from_dict(SETTINGS).to_yaml(p)
    return p


def records(run: Path) -> list[dict]:
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if not k.endswith("_per_sec")} for r in rows]


def start(cfg: Path, out: Path) -> subprocess.Popen:
    # Same thread count as this process: float reductions (hence losses) must match bit for bit.
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    cmd = [sys.executable, "-m", "textvae", "train", str(cfg), f"train.output_dir={out}"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def wait_for_checkpoint(run: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while not (run / "last" / "trainer_state.pt").exists():
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline, "no checkpoint appeared"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """An uninterrupted run with the same config and seed."""
    run = tmp_path_factory.mktemp("ref") / "run"
    Trainer(Config.from_dict(SETTINGS).apply_overrides([f"train.output_dir={run}"]), log=lambda s: None).fit()
    return run


def test_kill_9_then_resume_equals_uninterrupted_run(tmp_path, reference):
    cfg, run = write_config(tmp_path), tmp_path / "run"
    proc = start(cfg, run)
    wait_for_checkpoint(run, proc)
    time.sleep(0.3)  # land somewhere in the middle of later steps / checkpoint writes
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert find_checkpoint(run)  # the last complete checkpoint is there and loadable
    Trainer(Config.from_yaml(cfg).apply_overrides([f"train.resume={run}"]), log=lambda s: None).fit()
    assert records(run) == records(reference)
    a, b = TextVAE.from_pretrained(reference / "last").state_dict(), TextVAE.from_pretrained(run / "last").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_sigterm_saves_a_resumable_checkpoint_and_exits_cleanly(tmp_path, reference):
    cfg, run = write_config(tmp_path), tmp_path / "run"
    proc = start(cfg, run)
    wait_for_checkpoint(run, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "Traceback" not in err
    state = load_trainer_state(find_checkpoint(run))
    assert 0 < state["counters"]["step"] < 60
    Trainer(Config.from_yaml(cfg).apply_overrides([f"train.resume={run}"]), log=lambda s: None).fit()
    assert records(run) == records(reference)


def test_damaged_checkpoint_is_reported(tmp_path):
    run = tmp_path / "run"
    cfg = Config.from_dict(SETTINGS).apply_overrides([f"train.output_dir={run}", "train.max_steps=5"])
    Trainer(cfg, log=lambda s: None).fit()
    weights = run / "last" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF  # one flipped byte inside the tensor data: still parses, wrong numbers
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelDirError, match="checksum"):
        TextVAE.from_pretrained(run / "last")
    state = run / "last" / "trainer_state.pt"
    state.write_bytes(state.read_bytes()[:-20])
    with pytest.raises(ModelDirError, match="damaged"):
        load_trainer_state(run / "last")


def nan_after(model: TextVAE, step: int):
    """Make the model's loss NaN from its ``step``-th forward call on (a numerical fault)."""
    calls = {"n": 0}
    forward = model.forward

    def patched(*a, **k):
        out = forward(*a, **k)
        calls["n"] += 1
        if model.training and calls["n"] >= step:
            out.loss = out.loss * float("nan")
        return out

    model.forward = patched


def trainer_with_nan_from(cfg: Config, step: int) -> Trainer:
    """A trainer whose model's loss turns NaN from its ``step``-th training forward pass on."""
    trainer = Trainer(cfg, log=lambda s: None)
    setup = trainer._setup

    def setup_then_break():
        setup()
        nan_after(trainer.model, step)

    trainer._setup = setup_then_break
    return trainer


def test_nonfinite_loss_stop_names_step_and_keeps_checkpoint(tmp_path):
    run = tmp_path / "run"
    cfg = Config.from_dict(SETTINGS).apply_overrides([f"train.output_dir={run}", "train.on_nonfinite=stop"])
    trainer = trainer_with_nan_from(cfg, 8)
    with pytest.raises(TextVAEError, match=r"non-finite loss at step 8.*last good checkpoint"):
        trainer.fit()
    vae = TextVAE.from_pretrained(run / "last")
    assert all(torch.isfinite(p).all() for p in vae.parameters())
    assert load_trainer_state(run / "last")["counters"]["step"] == 5


def test_nonfinite_loss_skip_keeps_training_with_finite_weights(tmp_path):
    run = tmp_path / "run"
    cfg = Config.from_dict(SETTINGS).apply_overrides([f"train.output_dir={run}", "train.max_steps=12"])
    trainer = trainer_with_nan_from(cfg, 3)
    trainer.fit()
    assert trainer.state.skipped_steps == 10
    assert all(torch.isfinite(p).all() for p in TextVAE.from_pretrained(run / "last").parameters())
