"""What a run does about a non-finite loss or gradient: skip the update, or stop before it does harm.

One bad batch (an fp overflow, a rare outlier) is skipped and counted; a run that keeps producing them has
diverged, and going on would only overwrite ``last/`` with a broken model, so it stops with a message that
says where the last good checkpoint is.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from textvae.config import TrainConfig
from textvae.errors import TextVAEError

#: The skipped share of updates is judged from this many steps on (one bad first step is not a trend).
MIN_STEPS_FOR_FRACTION = 20


class _Counts(Protocol):
    skipped_steps: int


def skip_or_stop(
    state: _Counts, run_dir: Path, tc: TrainConfig, step: int, what: str, log: Callable[[str], None]
) -> None:
    """A NaN/inf ``what`` ("loss" or "gradient") at ``step`` (0-based): count a skipped update in
    ``state.skipped_steps``, or raise :class:`TextVAEError` when ``train.on_nonfinite=stop``, when more
    than ``train.max_skipped_steps`` were skipped, or when more than ``train.max_skipped_fraction`` of the
    updates so far were (from step :data:`MIN_STEPS_FOR_FRACTION` on)."""
    last = run_dir / "last"
    where = f"the last good checkpoint is {last}" if last.exists() else "no checkpoint has been written yet"
    msg = f"non-finite {what} at step {step + 1}"
    if tc.on_nonfinite == "stop":
        raise TextVAEError(f"{msg}; stopping ({where}); lower train.lr or set train.on_nonfinite=skip")
    state.skipped_steps += 1
    skipped = state.skipped_steps
    log(f"{msg}: update skipped ({skipped} so far)")
    if skipped > tc.max_skipped_steps:
        raise TextVAEError(
            f"{msg}: more than {tc.max_skipped_steps} updates skipped; stopping ({where}); lower train.lr"
        )
    done = step + 1
    if done >= MIN_STEPS_FOR_FRACTION and skipped > tc.max_skipped_fraction * done:
        kept = f"{last} holds the last checkpoint, maybe already affected" if last.exists() else where
        raise TextVAEError(
            f"{skipped} of the {done} updates so far were skipped (non-finite loss or gradient; "
            f"train.max_skipped_fraction={tc.max_skipped_fraction}): the run has diverged; stopping ({kept}); "
            "lower train.lr"
        )
