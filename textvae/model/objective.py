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
