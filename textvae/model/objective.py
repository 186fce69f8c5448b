"""Pieces of the VAE objective, as pure tensor functions (units: nats)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def gaussian_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per dimension: ``[B, Z] -> [B, Z]`` nats."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)


def kl_term(kl_per_sentence_dim: Tensor, free_bits: float = 0.0, mode: str = "dim") -> Tensor:
    """The KL part of the training loss (scalar, mean over sentences), with free bits.

    ``mode="dim"`` (Kingma et al. 2016): ``sum_i max(lambda, mean_b KL[b, i])`` — a dimension whose
    batch-average KL is below ``lambda`` gets no gradient from this term, so nothing pushes it further
    towards the prior. ``mode="vector"``: ``max(lambda, mean_b sum_i KL[b, i])``, a target for the whole
    latent vector. ``free_bits=0`` is the plain KL.
    """
    per_dim = kl_per_sentence_dim.mean(dim=0)  # [Z]
    if free_bits <= 0:
        return per_dim.sum()
    if mode == "dim":
        return per_dim.clamp(min=free_bits).sum()
    if mode == "vector":
        return per_dim.sum().clamp(min=free_bits)
    raise ValueError(f"unknown free-bits mode {mode!r}")


def mmd(x: Tensor, y: Tensor, scales: tuple[float, ...] = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)) -> Tensor:
    """Unbiased estimate of the squared maximum mean discrepancy between the samples ``x [N, Z]`` and
    ``y [M, Z]`` (N, M >= 2) -> scalar.

    The kernel is a sum of inverse multiquadrics ``C / (C + |a - b|^2)`` with ``C = 2 Z s`` for each ``s``
    in ``scales`` (Tolstikhin et al. 2018): its heavy tails keep a gradient for far-apart samples, where
    a Gaussian kernel's vanishes, and several widths make it independent of one length scale. Zero in
    expectation when both sets come from the same distribution; it can be slightly negative.
    """
    n, m, z = x.shape[0], y.shape[0], x.shape[1]
    xy = torch.cat([x, y]).float()
    d2 = torch.cdist(xy, xy).pow(2)  # [N + M, N + M]
    k = sum(2 * z * s / (2 * z * s + d2) for s in scales)
    off = 1.0 - torch.eye(n + m, device=x.device)  # the unbiased estimate leaves out k(a, a)
    k = k * off
    kxx = k[:n, :n].sum() / (n * (n - 1))
    kyy = k[n:, n:].sum() / (m * (m - 1))
    kxy = k[:n, n:].mean()
    return kxx + kyy - 2 * kxy


def token_nll(logits: Tensor, targets: Tensor) -> Tensor:
    """Cross-entropy per token: ``logits [N, V]``, ``targets [N]`` -> ``[N]`` nats (float32)."""
    return F.cross_entropy(logits.float(), targets, reduction="none")


def sum_per_row(values: Tensor, rows: Tensor, num_rows: int) -> Tensor:
    """Sum flat per-token ``values [N]`` into their sentences ``rows [N]`` -> ``[num_rows]``."""
    return torch.zeros(num_rows, dtype=values.dtype, device=values.device).index_add_(0, rows, values)


def word_dropout(input_ids: Tensor, lengths: Tensor, rate: float, unk_id: int, generator=None) -> Tensor:
    """Bowman et al. 2016: replace decoder input tokens by ``<unk>`` with probability ``rate``.

    ``input_ids [B, T]`` are decoder inputs (``<s> w1 .. wn`` then padding); the begin token (position 0)
    and padding (positions >= ``lengths - 1``) are never replaced.
    """
    if rate <= 0:
        return input_ids
    pos = torch.arange(input_ids.shape[1], device=input_ids.device)
    real = (pos > 0) & (pos.unsqueeze(0) < (lengths - 1).unsqueeze(1))
    if generator is None:  # rand_like: traceable by torch.compile with symbolic shapes (rand(shape) is not)
        noise = torch.rand_like(input_ids, dtype=torch.float)
    else:
        noise = torch.rand(input_ids.shape, device=input_ids.device, generator=generator)
    drop = noise < rate
    return input_ids.masked_fill(drop & real, unk_id)


def perturb_sentences(
    input_ids: Tensor,
    lengths: Tensor,
    *,
    drop: float = 0.0,
    substitute: float = 0.0,
    shuffle: int = 0,
    vocab: tuple[int, int] = (0, 1),
    pad_id: int = 0,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """A noisy copy of framed sentences (``<s> w1 .. wn </s>`` then padding): ``input_ids [B, T]``, ``lengths
    [B]`` -> ``(ids [B, T'], lengths [B])``, T' <= T. The frame tokens are never touched. In order:

    - each word is deleted with probability ``drop`` (the rest close up; a sentence may lose every word);
    - each remaining word is replaced with probability ``substitute`` by a token drawn uniformly from
      ``vocab = (low, high)`` (ids ``low .. high - 1``, i.e. the non-special ones);
    - words are shuffled locally: word ``i`` sorts by ``i + U(0, shuffle + 1)``, so none moves more than
      ``shuffle`` places (Lample et al. 2018).
    """
    dev, (b, t) = input_ids.device, input_ids.shape
    pos = torch.arange(t, device=dev).unsqueeze(0)

    def rand(shape: tuple[int, ...]) -> Tensor:
        return torch.rand(shape, device=dev, generator=generator)

    ids, lengths = input_ids, lengths.to(dev)
    if drop > 0:
        word = (pos > 0) & (pos < (lengths - 1).unsqueeze(1))
        keep = (pos < lengths.unsqueeze(1)) & ~(word & (rand((b, t)) < drop))
        order = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)  # kept tokens first, in order
        lengths = keep.sum(1)
        ids = ids.gather(1, order).masked_fill(pos >= lengths.unsqueeze(1), pad_id)
        ids = ids[:, : int(lengths.max())]
        pos = pos[:, : ids.shape[1]]
    word = (pos > 0) & (pos < (lengths - 1).unsqueeze(1))
    if substitute > 0:
        low, high = vocab
        swap = word & (rand(tuple(ids.shape)) < substitute)
        random_ids = low + (rand(tuple(ids.shape)) * (high - low)).long().clamp_max(high - low - 1)
        ids = torch.where(swap, random_ids, ids)
    if shuffle > 0:
        key = pos.to(torch.float) + word * rand(tuple(ids.shape)) * (shuffle + 1)
        key = torch.where(pos >= (lengths - 1).unsqueeze(1), pos.to(torch.float) + 2.0 * t + shuffle, key)
        ids = ids.gather(1, key.argsort(dim=1, stable=True))
    return ids, lengths
