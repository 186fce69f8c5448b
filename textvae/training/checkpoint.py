"""Checkpoints of a run: a model directory plus ``trainer_state.pt`` (optimizer, counters, RNG states).

A checkpoint directory is replaced atomically: the new one is written beside it under a temporary
name and swapped in with renames, so an interruption leaves the previous checkpoint loadable.
"""

from __future__ import annotations

import dataclasses
import math
import random
import shutil
from pathlib import Path
from typing import Any

import torch

from textvae.errors import DiskFullError, ModelDirError, TextVAEError
from textvae.fileio import fsync_path, is_disk_full, sha256_file
from textvae.model.persistence import CONFIG_NAME, read_config, warn_unverified
from textvae.model.vae import TextVAE
from textvae.training.faults import fault_point

STATE_NAME = "trainer_state.pt"


@dataclasses.dataclass(slots=True)  # slots: a misspelt counter is an error, not a new attribute
class TrainState:
    """Counters that, with the RNG states and the optimizer, make a resume exact."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    best_neg_elbo: float = math.inf
    evals_without_improvement: int = 0
    skipped_steps: int = 0  # updates skipped for a non-finite loss or gradient
    lr_decays: int = 0  # validation plateaus so far (train.lr_schedule=plateau)
    aggressive_phase: bool = True  # train.aggressive: still in the aggressive phase
    best_mi: float = -math.inf  # train.aggressive: the highest validation MI so far
    log_sums: dict[str, float] = dataclasses.field(default_factory=dict)


def resumable_state(
    model: TextVAE, optimizer: torch.optim.Optimizer, state: TrainState, directory: Path
) -> dict[str, Any]:
    """What an exact resume needs besides the model (optimizer, counters, RNG states), for
    :func:`save_checkpoint` into ``directory``. Refuses a model with non-finite weights, so a broken model
    never replaces a good checkpoint."""
    if not all(torch.isfinite(p).all() for p in model.parameters()):
        raise TextVAEError(
            f"model weights became non-finite at step {state.step}; the checkpoint in {directory} was kept"
        )
    return {"optimizer": optimizer.state_dict(), "counters": dataclasses.asdict(state), "rng": rng_state()}


def save_checkpoint(
    model: TextVAE, directory: str | Path, extra: dict[str, Any], trainer_state: dict[str, Any] | None = None
) -> Path:
    """Write model (and trainer state) to ``directory``, replacing any previous content atomically."""
    directory = Path(directory)
    tmp = directory.with_name(directory.name + ".tmp")
    old = directory.with_name(directory.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        fault_point("checkpoint:started")
        extra = dict(extra)
        if trainer_state is not None:
            torch.save(trainer_state, tmp / STATE_NAME)
            fsync_path(tmp / STATE_NAME)
            extra["trainer_state_sha256"] = sha256_file(tmp / STATE_NAME)
        fault_point("checkpoint:state-written")
        model.save_pretrained(tmp, extra)
        fsync_path(tmp)
        fault_point("checkpoint:written")
    except BaseException as e:
        full = is_disk_full(e, tmp)
        shutil.rmtree(tmp, ignore_errors=True)  # a half-written checkpoint is of no use to anyone
        if full:
            kept = f"the previous checkpoint in {directory} is intact" if directory.exists() else "nothing was saved"
            raise DiskFullError(f"no space left on device while saving {directory}; {kept}") from None
        raise
    # Swap: the previous checkpoint stays complete under ``.old`` until the new one is in place.
    if directory.exists():
        shutil.rmtree(old, ignore_errors=True)
        directory.rename(old)
        fault_point("checkpoint:old-moved")
    tmp.rename(directory)
    fsync_path(directory.parent)
    fault_point("checkpoint:swapped")
    shutil.rmtree(old, ignore_errors=True)
    return directory


def find_checkpoint(path: str | Path) -> Path:
    """The resumable checkpoint for ``train.resume``: a run directory's ``last/`` or a checkpoint itself.

    If a crash happened mid-swap, ``last.old`` still holds the previous checkpoint and is used.
    """
    p = Path(path)
    for cand in (p, p / "last", p / "last.old", p.with_name(p.name + ".old")):
        if (cand / STATE_NAME).is_file() and (cand / CONFIG_NAME).is_file():
            return cand
    if (p / "metrics.jsonl").is_file() or (p / "last.tmp").exists():
        raise ModelDirError(
            f"nothing to resume in {p}: its run stopped before its first checkpoint; start it again with "
            f"train.output_dir={p}"
        )
    raise ModelDirError(f"nothing to resume in {p}: no {STATE_NAME} found (pass the run directory)")


def load_trainer_state(checkpoint: Path) -> dict[str, Any]:
    """Read ``trainer_state.pt`` with ``weights_only=True`` (no code runs while loading), after checking
    it against the checksum recorded in the checkpoint's config.json."""
    recorded = read_config(checkpoint).get("trainer_state_sha256")
    if not recorded:
        warn_unverified(checkpoint / STATE_NAME)
    elif sha256_file(checkpoint / STATE_NAME) != recorded:
        raise ModelDirError(f"{checkpoint / STATE_NAME} is damaged (checksum mismatch); cannot resume from it")
    try:
        return torch.load(checkpoint / STATE_NAME, map_location="cpu", weights_only=True)
    except Exception as e:  # any unpickling/format failure means a damaged file
        raise ModelDirError(f"{checkpoint / STATE_NAME} is damaged ({type(e).__name__}); cannot resume") from None


def rng_state() -> dict[str, Any]:
    """Every random state that training consumes, in a form ``weights_only`` loading accepts."""
    version, internal, gauss = random.getstate()
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": [version, list(internal), gauss]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
