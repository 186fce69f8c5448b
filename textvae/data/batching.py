"""Batches of token ids: padding, and length-bucketed batch order.

A sentence of ``n`` token ids becomes ``<s> w1 .. wn </s>`` (length ``n + 2``). The decoder reads
positions ``0..L-2`` and predicts ``1..L-1``, so every sentence has ``n + 1`` target tokens (the end
token included) — the count the literature uses for perplexity.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor


class TokenIds(list):
    """One sentence's decoder token ids - a plain ``list[int]`` everywhere - that also carries the same
    sentence in the encoder's own tokenizer (``encoder_ids``) when the model has one, so that a corpus stays
    one list and :meth:`TextVAE.batch_from_ids` can give the encoder exactly the ids training gave it.
    Slicing returns a plain list (the other view would no longer match)."""

    __slots__ = ("encoder_ids",)

    def __init__(self, ids: Sequence[int] = (), encoder_ids: Sequence[int] | None = None) -> None:
        super().__init__(ids)
        self.encoder_ids = None if encoder_ids is None else list(encoder_ids)


@dataclass
class Batch:
    """A padded batch.

    input_ids: ``[B, T]`` long, ``<s> ... </s>`` then ``pad_id``.
    lengths: ``[B]`` long, tokens per sentence including ``<s>`` and ``</s>`` (always >= 2).
    labels: ``[B]`` long label ids, or None.
    encoder_input_ids, encoder_lengths: ``[B, T']`` and ``[B]``, the same sentences in the encoder's own
    tokenizer (framed by its begin/end tokens, e.g. ``[CLS] .. [SEP]``), when encoder and decoder tokenize
    differently; None: the encoder reads ``input_ids``.
    """

    input_ids: Tensor
    lengths: Tensor
    labels: Tensor | None = None
    encoder_input_ids: Tensor | None = None
    encoder_lengths: Tensor | None = None

    def to(self, device: torch.device | str) -> Batch:
        def move(t: Tensor | None) -> Tensor | None:
            return None if t is None else t.to(device, non_blocking=True)

        return Batch(
            move(self.input_ids),
            move(self.lengths),
            move(self.labels),
            move(self.encoder_input_ids),
            move(self.encoder_lengths),
        )

    @property
    def encoder_inputs(self) -> tuple[Tensor, Tensor]:
        """What the encoder reads: ``(ids [B, T'], lengths [B])``, its own ids when the batch has them."""
        if self.encoder_input_ids is None:
            return self.input_ids, self.lengths
        return self.encoder_input_ids, self.encoder_lengths

    @property
    def num_target_tokens(self) -> int:
        """Real (non-padding) target tokens: sum over sentences of ``length - 1``."""
        return int(self.lengths.sum().item()) - len(self.lengths)

    def __len__(self) -> int:
        return self.input_ids.shape[0]


def _pad(sequences: Sequence[Sequence[int]], pad_id: int, bos_id: int, eos_id: int) -> tuple[Tensor, Tensor]:
    """``<s> .. </s>``-framed, right-padded ``ids [B, T]`` and ``lengths [B]``."""
    n = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
    ids = np.full((len(sequences), int(n.max()) + 2), pad_id, dtype=np.int64)
    ids[:, 0] = bos_id
    # Scatter every token at once (one numpy call, not one tensor per sentence): row r, column 1..n[r].
    rows = np.repeat(np.arange(len(n)), n)
    cols = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n) + 1
    ids[rows, cols] = np.fromiter(itertools.chain.from_iterable(sequences), dtype=np.int64, count=int(n.sum()))
    ids[np.arange(len(n)), n + 1] = eos_id
    return torch.from_numpy(ids), torch.from_numpy(n + 2)


def collate(
    sequences: Sequence[Sequence[int]],
    pad_id: int,
    bos_id: int,
    eos_id: int,
    labels: Sequence[int] | None = None,
    encoder_sequences: Sequence[Sequence[int]] | None = None,
    encoder_specials: tuple[int, int, int] | None = None,
) -> Batch:
    """Wrap each id sequence in ``<s> .. </s>`` and right-pad to the longest.

    ``encoder_sequences`` (the same sentences in the encoder's tokenizer) are framed and padded likewise with
    ``encoder_specials = (pad, bos, eos)`` of that tokenizer; None: the encoder reads the decoder's ids.
    """
    ids, lengths = _pad(sequences, pad_id, bos_id, eos_id)
    lab = None if labels is None else torch.as_tensor(list(labels), dtype=torch.long)
    if encoder_sequences is None:
        return Batch(ids, lengths, lab)
    if encoder_specials is None:
        raise ValueError("encoder_sequences need encoder_specials = (pad_id, bos_id, eos_id) of their tokenizer")
    enc_ids, enc_lengths = _pad(encoder_sequences, *encoder_specials)
    return Batch(ids, lengths, lab, enc_ids, enc_lengths)


def batch_indices(
    lengths: Sequence[int] | np.ndarray,
    batch_size: int,
    *,
    seed: int,
    epoch: int,
    shuffle: bool = True,
    bucket: bool = True,
    max_batch_tokens: int | None = None,
    pool_batches: int = 50,
) -> list[np.ndarray]:
    """The batches of one epoch, as int64 arrays of sentence indices; a pure function of its arguments.

    With ``bucket``, sentences are shuffled, cut into pools of ``pool_batches`` batches, and sorted by
    length inside each pool, so a batch holds sentences of nearly equal length (little padding) while
    the epoch order stays random. With ``max_batch_tokens`` a batch also stops growing once
    ``len(batch) * longest`` would exceed the budget. Batch order is shuffled again at the end.
    Resuming at batch ``k`` of epoch ``e`` is ``batch_indices(..., epoch=e)[k:]``.

    Memory is O(N) in numpy (8 bytes per sentence), not Python objects, so corpora of millions of
    sentences cost tens of megabytes here.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(lengths)) if shuffle else np.arange(len(lengths))
    if bucket:
        pool = batch_size * pool_batches
        for s in range(0, len(order), pool):
            part = order[s : s + pool]
            order[s : s + pool] = part[np.argsort(lengths[part], kind="stable")]
    if max_batch_tokens is None:
        cuts = list(range(batch_size, len(order), batch_size))
    else:
        cuts = _budget_cuts(lengths[order], batch_size, max_batch_tokens)
    batches = np.split(order, cuts) if len(order) else []
    if shuffle:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def _budget_cuts(ordered_lengths: np.ndarray, batch_size: int, max_batch_tokens: int) -> list[int]:
    """Positions where a new batch starts: at ``batch_size`` sentences, or before the sentence that would
    make ``count * longest`` exceed ``max_batch_tokens`` (a single over-long sentence still gets a batch)."""
    cuts, count, longest = [], 0, 0
    for pos, n in enumerate(ordered_lengths.tolist()):
        widest = max(longest, n)
        if count and (count >= batch_size or (count + 1) * widest > max_batch_tokens):
            cuts.append(pos)
            count, widest = 0, n
        count += 1
        longest = widest
    return cuts
