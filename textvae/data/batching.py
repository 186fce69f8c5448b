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
    lengths = [len(s) + 2 for s in sequences]
    width = max(lengths)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    for i, seq in enumerate(sequences):
        ids[i, 0] = bos_id
        if seq:
            ids[i, 1 : len(seq) + 1] = torch.as_tensor(seq, dtype=torch.long)
        ids[i, len(seq) + 1] = eos_id
    return ids, torch.as_tensor(lengths, dtype=torch.long)


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
    encoder_ids: Sequence[Sequence[int]] | None = None,
    encoder_specials: tuple[int, int, int] | None = None,
) -> Iterator[Batch]:
    """Deterministic, length-sorted batches for evaluation (every sentence exactly once). ``encoder_ids``:
    the same sentences in the encoder's tokenizer, if it has its own (see :func:`collate`)."""
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
            None if encoder_ids is None else [encoder_ids[i] for i in idx],
            encoder_specials,
        )
