"""Ownership of a run directory: one process at a time, and a clear state before a run starts.

A run holds ``RUN/.lock`` for its whole life with an OS lock (``flock``): the OS releases it when the
process ends in any way, ``kill -9`` included, so a lock is never left held by a dead process. The file
itself stays (deleting it would let two processes lock two different files); its content names the
holder, so a second run can say who has the directory, and a run that finds a name in a file it could
lock knows the previous holder died without releasing it (reported as a stale lock).
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textvae.errors import TextVAEError
from textvae.training.checkpoint import STATE_NAME

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".lock"


class RunLock:
    """An exclusive lock on a run directory (created if missing). Use as a context manager or call
    :meth:`acquire` / :meth:`release`. ``key`` names the setting that chose the directory, for messages."""

    def __init__(self, run_dir: str | Path, key: str = "train.output_dir") -> None:
        self.run_dir = Path(run_dir)
        self.key = key
        self._fd: int | None = None

    def acquire(self, log: Callable[[str], None] = print) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        path = self.run_dir / LOCK_NAME
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            _lock(fd)
        except OSError:
            os.close(fd)
            holder = _describe(_read_holder(path))
            raise TextVAEError(
                f"{self.run_dir} is in use by another textvae run ({holder}); wait for it to end or choose "
                f"another {self.key}"
            ) from None
        previous = _read_holder(path)
        if previous:  # we got the lock, yet a holder is named: it ended without releasing (killed)
            log(f"{self.run_dir}: stale lock of an ended run ({_describe(previous)}) taken over")
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)  # an empty lock file: released cleanly
        except OSError:
            pass  # a full or read-only disk must not turn a release into a crash
        finally:
            os.close(fd)  # closing the descriptor drops the OS lock

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def __del__(self) -> None:
        self.release()


def _lock(fd: int) -> None:
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    else:  # pragma: no cover - Windows: lock the first byte
        import msvcrt

        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)


def _read_holder(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8").strip()
        return json.loads(text) if text else {}
    except (OSError, ValueError):
        return {"pid": "?"}


def _describe(holder: dict[str, Any]) -> str:
    if not holder:
        return "unknown process"
    where = f" on {holder['host']}" if holder.get("host") else ""
    since = f", since {holder['since']}" if holder.get("since") else ""
    return f"process {holder.get('pid', '?')}{where}{since}"


#: What an earlier run that never reached its first checkpoint can leave behind.
_INCOMPLETE_LEFTOVERS = ("metrics.jsonl", "last.tmp", "best.tmp", "config.yaml")


def has_checkpoint(run_dir: Path) -> bool:
    return any((run_dir / name / STATE_NAME).is_file() for name in ("last", "last.old"))


def holds_a_run(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds something a new run must not overwrite: a checkpoint or a saved model."""
    return any((run_dir / name).exists() for name in ("last", "last.old", "best", "best.old"))


def clear_incomplete_run(run_dir: Path, log: Callable[[str], None] = print) -> None:
    """Make room for a new run in a directory whose earlier run stopped before its first checkpoint (a
    full disk at the first save, a crash in the first steps): its records are kept as
    ``metrics.incomplete.jsonl``, half-written checkpoints are removed. Call with the run's lock held."""
    import shutil

    found = [n for n in _INCOMPLETE_LEFTOVERS if (run_dir / n).exists()]
    if not found or holds_a_run(run_dir):
        return
    if (run_dir / "metrics.jsonl").exists():
        kept, i = run_dir / "metrics.incomplete.jsonl", 2
        while kept.exists():  # an earlier failed start's records stay too
            kept, i = run_dir / f"metrics.incomplete-{i}.jsonl", i + 1
        (run_dir / "metrics.jsonl").replace(kept)
    for name in ("last.tmp", "best.tmp"):
        shutil.rmtree(run_dir / name, ignore_errors=True)
    if found != ["config.yaml"]:
        log(f"{run_dir}: an earlier run stopped before its first checkpoint; starting over")


def disk_full_message(run_dir: Path, error: BaseException) -> str:
    """What to tell the user when the disk filled up during a run: what failed, and how to go on."""
    if isinstance(error, TextVAEError):  # a DiskFullError already says what
        what = str(error)
    else:
        where = getattr(error, "filename", None) or run_dir
        what = f"no space left on device while writing {where}"
    then = (
        f"continue with train.resume={run_dir}"
        if has_checkpoint(run_dir)
        else f"start again with train.output_dir={run_dir}"
    )
    return f"{what}; free some space, then {then}"
