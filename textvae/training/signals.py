"""Graceful interruption of training: SIGINT/SIGTERM become a request to stop after the current step."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def stop_on_signals(trainer: Any) -> Iterator[None]:
    """While training, SIGINT/SIGTERM ask the loop to stop after the current step (it then saves a
    resumable checkpoint); a second SIGINT interrupts at once. Outside the main thread this is a no-op."""

    def request(signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        if trainer.interrupted is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        trainer.interrupted = name

    previous = {}
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, request)
    except ValueError:  # not the main thread: signals stay with the caller
        pass
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
