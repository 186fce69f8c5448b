"""torchrun with 2 CPU processes (gloo) follows single-process training with the same global batch."""

import json
import os
import subprocess
import sys

import pytest

from textvae.config import Config
from textvae.training.trainer import Trainer

SETTINGS = {
    "data": {"train": "synthetic", "synthetic_size": 300, "valid_fraction": 0.1},
    # No dropout of either kind: those draw per-rank random numbers, the one thing ranks do not share.
    "model": {"embedding_size": 16, "hidden_size": 24, "latent_size": 4},
    # float32: on a CPU with native bf16, precision=auto would train in bf16 autocast, whose rounding
    # differs between a batch of 16 and two of 8 by more than the tolerance below.
    "train": {
        "max_steps": 6,
        "batch_size": 16,
        "eval_every": 3,
        "log_every": 1,
        "progress": False,
        "precision": "float32",
    },
}


def train_records(run):
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


def test_two_processes_match_one(tmp_path):
    single = tmp_path / "single"
    Trainer(Config.from_dict(SETTINGS).apply_overrides([f"train.output_dir={single}"]), log=lambda s: None).fit()

    cfg = tmp_path / "cfg.yaml"
    Config.from_dict(SETTINGS).to_yaml(cfg)
    ddp = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    cmd += ["-m", "textvae", "train", str(cfg), f"train.output_dir={ddp}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]

    a, b = train_records(single), train_records(ddp)
    assert [(r["split"], r["step"]) for r in a] == [(r["split"], r["step"]) for r in b]
    for ra, rb in zip(a, b):
        for key in ("loss", "rec", "kl", "neg_elbo"):
            if key in ra:
                assert rb[key] == pytest.approx(ra[key], rel=1e-4, abs=1e-5), (ra["step"], key)
        if ra["split"] == "train":
            assert rb["sentences"] == ra["sentences"] and rb["tokens"] == ra["tokens"]
    # Rank 0 alone wrote the run: one metrics file, one set of checkpoints.
    assert (ddp / "best" / "model.safetensors").is_file() and (ddp / "last" / "trainer_state.pt").is_file()


def test_an_adaptive_softmax_tail_without_rare_targets_does_not_stall_ddp(tmp_path):
    """A tail that holds only the rarest token gets no gradient in most batches: DDP must not wait for it."""
    single = tmp_path / "single"
    Trainer(Config.from_dict(SETTINGS).apply_overrides([f"train.output_dir={single}"]), log=lambda s: None).fit()
    vocab = json.loads((single / "best" / "config.json").read_text())["model"]["vocab_size"]
    cfg = tmp_path / "cfg.yaml"
    Config.from_dict(SETTINGS).apply_overrides([f"model.adaptive_softmax={vocab - 1}"]).to_yaml(cfg)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    cmd += ["-m", "textvae", "train", str(cfg), f"train.output_dir={tmp_path / 'ddp'}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((tmp_path / "ddp" / "best" / "config.json").read_text())["model"]["adaptive_softmax"] == vocab - 1
