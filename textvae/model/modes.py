"""Switching a module to evaluation mode for a block of work, and back (x-transformers' ``eval_decorator``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Run the block without dropout / word dropout, then restore the caller's mode - also when the block
    raises. Usable as a decorator too (``@eval_mode(model)`` needs the model up front, so functions that
    receive it use the ``with`` form)."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)
