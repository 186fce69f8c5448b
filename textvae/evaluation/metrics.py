"""Metrics, as functions. Units: nats; "per sentence" figures are means over sentences."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from textvae.data.batching import Batch
from textvae.model.modes import eval_mode

if TYPE_CHECKING:
    from textvae.model.vae import TextVAE


def latent_variances(mu: Tensor) -> Tensor:
    """``Cov_x(E_q[z|x])`` per dimension: variance over sentences of the posterior means ``[N, Z] -> [Z]``."""
    if mu.shape[0] < 2:
        return torch.zeros(mu.shape[1], dtype=mu.dtype, device=mu.device)
    return mu.var(dim=0, unbiased=True)


def active_units(mu: Tensor, threshold: float = 0.01) -> int:
    """Dimensions whose posterior mean varies across sentences by more than ``threshold`` (Burda et al. 2016)."""
    return int((latent_variances(mu) > threshold).sum().item())


@torch.no_grad()
def elbo_stats(
    model: TextVAE,
    batches: Iterable[Batch],
    *,
    seed: int = 0,
    au_threshold: float = 0.01,
    beta: float = 1.0,
) -> dict[str, Any]:
    """Single-sample ELBO figures over a corpus, with a fixed sampling seed so evaluations are comparable.

    Returns ``neg_elbo``, ``rec``, ``kl`` (nats per sentence), ``objective`` (the training loss at ``beta``,
    with free bits, rate target and MMD as the model applies them per batch; nats per sentence, equal to
    ``neg_elbo`` for a plain VAE at ``beta = 1``), ``rec_per_token``, ``ppl_elbo``
    (``exp(total neg. ELBO / total tokens)``, an upper bound on perplexity), ``au``, ``kl_per_dim``,
    ``num_sentences`` and ``num_tokens``.
    """
    gen = torch.Generator(model.device).manual_seed(seed)
    rec = kl = objective = 0.0
    n_sent = n_tok = 0
    mus: list[Tensor] = []
    kl_dim: Tensor | None = None
    with eval_mode(model):
        for batch in batches:
            batch = batch.to(model.device)
            out = model(batch, beta=beta, generator=gen)
            b = len(batch)
            rec += float(out.rec_per_sentence.sum())
            kl += float(out.kl_per_sentence.sum())
            objective += float(out.loss) * b  # out.loss is a mean over the batch's sentences
            n_sent += b
            n_tok += out.num_tokens
            if out.mu is not None:
                mus.append(out.mu.float().cpu())
                kl_dim = out.kl_per_dim.cpu() * b + (kl_dim if kl_dim is not None else 0)
    if n_sent == 0:
        raise ValueError("no sentences to evaluate")
    mu = torch.cat(mus) if mus else None
    return {
        "neg_elbo": (rec + kl) / n_sent,
        "rec": rec / n_sent,
        "kl": kl / n_sent,
        "objective": objective / n_sent,
        "rec_per_token": rec / max(n_tok, 1),
        "ppl_elbo": math.exp(min((rec + kl) / max(n_tok, 1), 700.0)),
        "au": active_units(mu, au_threshold) if mu is not None else 0,
        "kl_per_dim": (kl_dim / n_sent).tolist() if kl_dim is not None else [],
        "num_sentences": n_sent,
        "num_tokens": n_tok,
    }
