"""A run's records: ``metrics.jsonl`` (one strict-JSON object per line) and the training-window sums.

Appends are whole lines or nothing (a write that fails half-way, as on a full disk, is truncated back); a
non-finite figure is written as ``null``, since ``NaN`` is not JSON. A resume drops the records written
after its checkpoint, which the resumed run writes again.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

METRICS_FILE = "metrics.jsonl"
FIGURES = ("loss", "rec", "kl", "mmd", "beta", "lr", "inner_steps")  # averaged per step over a logging window


def append_record(run_dir: Path, record: dict[str, Any]) -> None:
    """Append ``record`` to ``run_dir/metrics.jsonl`` as one line of strict JSON."""
    data = (json.dumps(json_safe(record), allow_nan=False) + "\n").encode("utf-8")
    fd = os.open(run_dir / METRICS_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        start = os.fstat(fd).st_size
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        except OSError:
            os.ftruncate(fd, start)
            raise
    finally:
        os.close(fd)


def drop_records_after(run_dir: Path, step: int) -> None:
    """Keep the records of steps <= ``step`` (and drop unreadable lines), through a temporary file."""
    metrics = run_dir / METRICS_FILE
    if not metrics.exists():
        return
    keep = [ln for ln in metrics.read_text(encoding="utf-8").splitlines() if _step_of(ln) <= step]
    tmp = metrics.with_suffix(".jsonl.tmp")
    try:
        tmp.write_text("".join(k + "\n" for k in keep), encoding="utf-8")
        tmp.replace(metrics)
    finally:
        tmp.unlink(missing_ok=True)  # after a failed write (full disk): metrics.jsonl is untouched


def step_figures(
    loss_sum: float,
    rec_sum: float,
    kl_sum: float,
    mmd_sum: float,
    sentences: float,
    tokens: float,
    *,
    beta: float,
    lr: float,
    has_mmd: bool,
    inner_steps: int | None = None,
) -> dict[str, float]:
    """One step's figures from its sums over the global batch (every rank's shard): loss, rec, KL (and MMD)
    as means per sentence, the step's β and lr, the counts, and ``inner_steps`` (train.aggressive) if given."""
    n = max(sentences, 1)
    figures = {"loss": loss_sum / n, "rec": rec_sum / n, "kl": kl_sum / n, "beta": beta, "lr": lr}
    figures |= {"sentences": sentences, "tokens": tokens}
    if has_mmd:
        figures["mmd"] = mmd_sum / n
    if inner_steps is not None:
        figures["inner_steps"] = inner_steps
    return figures


def accumulate(sums: dict[str, float], out: dict[str, float]) -> None:
    """Add one step's figures to the sums of the current logging window."""
    for k in FIGURES:
        if k in out:  # mmd: only with model.mmd_weight; inner_steps: with train.aggressive
            sums[k] = sums.get(k, 0.0) + out[k]
    sums["steps"] = sums.get("steps", 0) + 1
    sums["n"] = sums.get("n", 0) + out["sentences"]
    sums["tokens"] = sums.get("tokens", 0) + out["tokens"]
    sums["rec_sum"] = sums.get("rec_sum", 0.0) + out["rec"] * out["sentences"]


def train_record(
    sums: dict[str, float], step: int, epoch: int, seconds: float, phase: str | None = None
) -> dict[str, Any]:
    """The ``split: train`` record of a logging window: means per step (loss, rec, KL in nats per sentence,
    β, lr), reconstruction per target token, counts, and throughput over ``seconds`` of training; ``phase``
    (``autoencoder`` / ``vae``) when the run pretrains an autoencoder."""
    n = max(sums.get("n", 0), 1)
    return {
        "split": "train",
        "step": step,
        "epoch": epoch,
        **{k: sums[k] / sums["steps"] for k in FIGURES if k in sums},
        "rec_per_token": sums["rec_sum"] / max(sums["tokens"], 1),
        "sentences": int(sums["n"]),
        "tokens": int(sums["tokens"]),
        "tokens_per_sec": sums["tokens"] / max(seconds, 1e-9),
        "sentences_per_sec": n / max(seconds, 1e-9),
    } | ({"phase": phase} if phase else {})


def json_safe(value: Any) -> Any:
    """``value`` with NaN/inf floats replaced by None: ``json.dumps`` would write ``NaN``, which is not JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def _step_of(line: str) -> int:
    try:
        return int(json.loads(line).get("step", 0))
    except (json.JSONDecodeError, AttributeError, TypeError, ValueError):
        return 1 << 62  # unreadable line: drop it
