"""Training several runs in turn from one script (benchmarks, sweeps), safely across interruptions."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from textvae.config import Config
from textvae.training.trainer import Trainer


def train_to_completion(cfg: Config, log: Callable[[str], None] = print) -> Path:
    """Train ``cfg`` into ``cfg.train.output_dir`` and return that run directory.

    A run directory that already holds a checkpoint is resumed, so a finished run returns at once and a cut
    one goes on from where it stopped. An interrupted fit (SIGINT/SIGTERM: the trainer saves and returns)
    ends the script with exit status 130/143, instead of letting it evaluate a half-trained model or
    start the next run."""
    run = Path(cfg.train.output_dir)
    if (run / "last" / "trainer_state.pt").is_file():
        cfg.train.resume = str(run)
    trainer = Trainer(cfg, log=log)
    trainer.fit()
    if trainer.interrupted:
        raise SystemExit(130 if trainer.interrupted == "SIGINT" else 143)
    return run
