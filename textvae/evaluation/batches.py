"""Feeding a tokenized corpus to a model for evaluation: deterministic batches, the posteriors of every
sentence, and the progress report long evaluations show.

Batches come from :meth:`TextVAE.batch_from_ids`, so a model whose encoder has a tokenizer of its own gets
its own view of every sentence without the caller handling a second id list.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from textvae.data.batching import Batch, batch_indices
from textvae.errors import TextVAEError
from textvae.model.modes import eval_mode

if TYPE_CHECKING:
    from textvae.model.vae import TextVAE

#: ``callback(sentences_done, total)``, the alternative to a progress bar.
ProgressCallback = Callable[[int, int], None]


def eval_batches(
    model: TextVAE,
    token_ids: Sequence[Sequence[int]],
    labels: Sequence[int] | None = None,
    batch_size: int = 32,
    *,
    max_batch_tokens: int | None = None,
) -> Iterator[tuple[np.ndarray, Batch]]:
    """The evaluation batches of a corpus: ``(indices [B] int64, Batch on the model's device)``, length-sorted,
    deterministic, every sentence exactly once (``indices`` put per-sentence results back in input order).

    ``token_ids`` are the decoder's ids (no ``<s>``/``</s>``); ``labels`` (one id per sentence) are kept for a
    conditional model only. Arguments are checked when called, not at the first batch.
    """
    if labels is not None and len(labels) != len(token_ids):
        raise ValueError(f"{len(labels)} labels for {len(token_ids)} sentences")
    if not model.config.conditional:
        labels = None  # an unconditional model takes no label: don't carry them through the batches
    order = batch_indices(
        [len(x) for x in token_ids], batch_size, seed=0, epoch=0, shuffle=False, max_batch_tokens=max_batch_tokens
    )

    def batches() -> Iterator[tuple[np.ndarray, Batch]]:
        for idx in order:
            lab = None if labels is None else [labels[i] for i in idx]
            yield idx, model.batch_from_ids([token_ids[i] for i in idx], lab)

    return batches()


@torch.no_grad()
def collect_posteriors(model: TextVAE, batches: Iterable[Batch]) -> tuple[Tensor, Tensor]:
    """Posterior parameters of every sentence in ``batches``, in batch order: ``(mu [N, Z], logvar [N, Z])``
    float32 on the model's device (N x Z is small even for a whole corpus). Raises :class:`TextVAEError`
    for a language model (no latent), ``ValueError`` for no batch at all."""
    model.require_latent()
    mus: list[Tensor] = []
    logvars: list[Tensor] = []
    with eval_mode(model):
        for batch in batches:
            mu, logvar = model.encode_batch(batch.to(model.device))
            mus.append(mu.float())
            logvars.append(logvar.float())
    if not mus:
        raise ValueError("no sentences to encode")
    return torch.cat(mus), torch.cat(logvars)


def posterior_params(
    model: TextVAE,
    token_ids: Sequence[Sequence[int]],
    labels: Sequence[int] | None = None,
    batch_size: int = 64,
    *,
    max_batch_tokens: int | None = None,
) -> tuple[Tensor, Tensor]:
    """:func:`collect_posteriors` of a tokenized corpus, in input order: ``(mu [N, Z], logvar [N, Z])``.
    ``labels`` (ids) are needed by a conditional model."""
    if not model.has_latent:  # the library's message, before any batching
        raise TextVAEError("this model has no latent (model.use_latent=false): it is a language model")
    pairs = list(eval_batches(model, token_ids, labels, batch_size, max_batch_tokens=max_batch_tokens))
    mu, logvar = collect_posteriors(model, (b for _, b in pairs))
    order = torch.as_tensor(np.concatenate([idx for idx, _ in pairs]), device=mu.device)
    out_mu, out_logvar = torch.empty_like(mu), torch.empty_like(logvar)
    out_mu[order], out_logvar[order] = mu, logvar
    return out_mu, out_logvar


class Progress:
    """What :func:`progress` yields: ``update(n, **postfix)`` after each batch of ``n`` sentences."""

    def __init__(self, total: int, bar: Any, callback: ProgressCallback | None) -> None:
        self.total, self.done, self._bar, self._callback = total, 0, bar, callback

    @property
    def shows_bar(self) -> bool:
        return self._bar is not None

    def update(self, n: int, **postfix: str) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
            if postfix:
                self._bar.set_postfix(refresh=False, **postfix)
        if self._callback is not None:
            self._callback(self.done, self.total)


@contextmanager
def report_progress(setting: bool | ProgressCallback, total: int, desc: str) -> Iterator[Progress]:
    """A progress report over ``total`` sentences: a tqdm bar on stderr (``setting=True``; closed also on an
    error or Ctrl-C, so the terminal is left clean), ``callback(done, total)`` calls, or nothing (False)."""
    bar = None
    if setting is True:
        bar = tqdm(total=total, unit="sent", desc=desc, file=sys.stderr, dynamic_ncols=True)
    try:
        yield Progress(total, bar, setting if callable(setting) else None)
    finally:
        if bar is not None:
            bar.close()
