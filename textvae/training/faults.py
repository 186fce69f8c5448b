"""Fault injection for the reliability tests: ``TEXTVAE_FAULT=NAME[@N]`` makes the process kill itself
(SIGKILL, as a power cut or the OOM killer would) the N-th time (default 1st) it passes the point NAME.

The points sit between the phases of a checkpoint write (see :func:`save_checkpoint`), where a real
crash is most harmful and a random-time kill rarely lands. Unset, a point costs one dict lookup.
"""

from __future__ import annotations

import os
import signal

_hits: dict[str, int] = {}


def fault_point(name: str) -> None:
    """Kill this process here if ``TEXTVAE_FAULT`` names this point (and this is its N-th pass)."""
    spec = os.environ.get("TEXTVAE_FAULT")
    if not spec:
        return
    target, _, nth = spec.partition("@")
    if target != name:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
