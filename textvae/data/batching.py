"""Batches of token ids: padding, and length-bucketed batch order.

A sentence of ``n`` token ids becomes ``<s> w1 .. wn </s>`` (length ``n + 2``). The decoder reads
positions ``0..L-2`` and predicts ``1..L-1``, so every sentence has ``n + 1`` target tokens (the end
token included) — the count the literature uses for perplexity.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class Batch:
    """A padded batch.

    input_ids: ``[B, T]`` long, ``<s> ... </s>`` then ``pad_id``.
    lengths: ``[B]`` long, tokens per sentence including ``<s>`` and ``</s>`` (always >= 2).
    labels: ``[B]`` long label ids, or None.
    """

    input_ids: Tensor
    lengths: Tensor
    labels: Tensor | None = None

    def to(self, device: torch.device | str) -> Batch:
        return Batch(
            self.input_ids.to(device, non_blocking=True),
            self.lengths.to(device, non_blocking=True),
            None if self.labels is None else self.labels.to(device, non_blocking=True),
        )

    @property
    def num_target_tokens(self) -> int:
        """Real (non-padding) target tokens: sum over sentences of ``length - 1``."""
        return int(self.lengths.sum().item()) - len(self.lengths)

    def __len__(self) -> int:
        return self.input_ids.shape[0]


def collate(
    sequences: Sequence[Sequence[int]],
    pad_id: int,
    bos_id: int,
    eos_id: int,
    labels: Sequence[int] | None = None,
) -> Batch:
    """Wrap each id sequence in ``<s> .. </s>`` and right-pad to the longest."""
    lengths = [len(s) + 2 for s in sequences]
    width = max(lengths)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    for i, seq in enumerate(sequences):
        ids[i, 0] = bos_id
        if seq:
            ids[i, 1 : len(seq) + 1] = torch.as_tensor(seq, dtype=torch.long)
        ids[i, len(seq) + 1] = eos_id
    lab = None if labels is None else torch.as_tensor(list(labels), dtype=torch.long)
    return Batch(ids, torch.as_tensor(lengths, dtype=torch.long), lab)


def batch_indices(
    lengths: Sequence[int],
    batch_size: int,
    *,
    seed: int,
    epoch: int,
    shuffle: bool = True,
    bucket: bool = True,
    max_batch_tokens: int | None = None,
    pool_batches: int = 50,
) -> list[list[int]]:
    """The batches of one epoch, as lists of sentence indices; a pure function of its arguments.

    With ``bucket``, sentences are shuffled, cut into pools of ``pool_batches`` batches, and sorted by
    length inside each pool, so a batch holds sentences of nearly equal length (little padding) while
    the epoch order stays random. With ``max_batch_tokens`` a batch also stops growing once
    ``len(batch) * longest`` would exceed the budget. Batch order is shuffled again at the end.
    Resuming at batch ``k`` of epoch ``e`` is ``batch_indices(..., epoch=e)[k:]``.
    """
    rng = random.Random(seed * 1_000_003 + epoch)
    order = list(range(len(lengths)))
    if shuffle:
        rng.shuffle(order)
    if bucket:
        pool = batch_size * pool_batches
        order = [i for s in range(0, len(order), pool) for i in sorted(order[s : s + pool], key=lengths.__getitem__)]
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for i in order:
        n = lengths[i]
        too_many_tokens = max_batch_tokens is not None and (len(current) + 1) * max(longest, n) > max_batch_tokens
        if current and (len(current) >= batch_size or too_many_tokens):
            batches.append(current)
            current, longest = [], 0
        current.append(i)
        longest = max(longest, n)
    if current:
        batches.append(current)
    if shuffle:
        rng.shuffle(batches)
    return batches


def iterate_batches(
    token_ids: Sequence[Sequence[int]],
    batch_size: int,
    pad_id: int,
    bos_id: int,
    eos_id: int,
    labels: Sequence[int] | None = None,
    max_batch_tokens: int | None = None,
) -> Iterator[Batch]:
    """Deterministic, length-sorted batches for evaluation (every sentence exactly once)."""
    lengths = [len(s) for s in token_ids]
    for idx in batch_indices(
        lengths, batch_size, seed=0, epoch=0, shuffle=False, bucket=True, max_batch_tokens=max_batch_tokens
    ):
        yield collate(
            [token_ids[i] for i in idx],
            pad_id,
            bos_id,
            eos_id,
            None if labels is None else [labels[i] for i in idx],
        )
