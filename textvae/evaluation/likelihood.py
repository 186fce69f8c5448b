"""Likelihood-based evaluation: importance-weighted NLL, exact LM NLL, mutual information, a corpus report.

Units are nats throughout. A sentence of ``n`` words has ``n + 1`` target tokens (the end token counts),
and perplexity is ``exp(total NLL / total target tokens)`` — the convention of Bowman et al. 2016,
He et al. 2019 and Li et al. 2019, so figures are comparable with theirs.

The importance-weighted bound (Burda et al. 2016) for a sentence ``x`` with ``K`` samples
``z_k ~ q(z|x)`` is ``-log p(x) <= -(logsumexp_k log w_k - log K)``, ``log w_k = log p(x|z_k) + log p(z_k)
- log q(z_k|x)``. ``K = 1`` is the single-sample negative ELBO; the bound tightens as ``K`` grows.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from textvae.data.batching import Batch
from textvae.evaluation.batches import (
    ProgressCallback,
    collect_posteriors,
    eval_batches,
    report_progress,
)
from textvae.evaluation.metrics import active_units
from textvae.model.modes import eval_mode
from textvae.model.posteriors import sample_vmf
from textvae.model.priors import LOG_2PI

if TYPE_CHECKING:
    from textvae.model.vae import TextVAE


def _sentence_nll(model: TextVAE, ids: Tensor, lengths: Tensor, z: Tensor | None, labels: Tensor | None) -> Tensor:
    """Teacher-forced ``-log p(x|z)`` (the model's own :meth:`TextVAE.sentence_nll`): ``[M]`` nats."""
    return model.sentence_nll(ids, lengths, model.decoder_code(z, labels))[0]


@torch.no_grad()
def log_likelihood_given_z(
    model: TextVAE, batch: Batch, z: Tensor | None = None, *, chunk_size: int | None = None
) -> Tensor:
    """``log p(x|z)`` per sentence (sum over its tokens, end token included), in nats.

    ``z`` is ``[B, Z]`` (one code per sentence) -> ``[B]``; ``[B, K, Z]`` (K codes per sentence; each
    sentence is repeated K times for the decoder) -> ``[B, K]``; or None for a language model -> ``[B]``.
    At most ``chunk_size`` (sentence, code) pairs go through the decoder at once (default: all), which
    bounds memory; the result does not depend on it.
    """
    dev = model.device
    ids, lengths = batch.input_ids.to(dev), batch.lengths.to(dev)
    labels = None if batch.labels is None else batch.labels.to(dev)
    bsz = ids.shape[0]
    if z is None or z.dim() == 2:
        k, flat_z, shape = 1, z, (bsz,)
    elif z.dim() == 3:
        k, flat_z, shape = z.shape[1], z.reshape(bsz * z.shape[1], z.shape[2]), (bsz, z.shape[1])
    else:
        raise ValueError(f"z must be [B, Z] or [B, K, Z], got shape {tuple(z.shape)}")
    if flat_z is not None:
        flat_z = flat_z.to(dev)
    total = bsz * k
    step = total if not chunk_size else max(1, chunk_size)
    with eval_mode(model):
        if step >= total and k == 1:
            return -_sentence_nll(model, ids, lengths, flat_z, labels).reshape(shape)
        out = torch.empty(total, device=dev)
        # Pairs are flattened sentence-major (row r is sentence r // K), so a chunk holds whole runs of one
        # sentence's samples and the chunk boundaries cannot change which code meets which sentence.
        for start in range(0, total, step):
            end = min(total, start + step)
            rows = torch.arange(start, end, device=dev) // k
            zc = None if flat_z is None else flat_z[start:end]
            lab = None if labels is None else labels[rows]
            out[start:end] = -_sentence_nll(model, ids[rows], lengths[rows], zc, lab)
    return out.reshape(shape)


def importance_terms(
    model: TextVAE,
    batch: Batch,
    mu: Tensor,
    logvar: Tensor,
    num_samples: int,
    chunk_size: int | None,
    generator: torch.Generator | None,
) -> tuple[Tensor, Tensor]:
    """``(log_w [B, K], log_px [B, K], kl [B, K])`` for ``K = num_samples`` codes per sentence; ``kl`` is
    ``log q(z_k|x) - log p(z_k)``, whose mean over ``k`` estimates the KL when it has no closed form.

    All noise ``eps [B, K, Z]`` is drawn up front, in one call: the samples (hence the estimate) do not
    depend on ``chunk_size``, and with ``K = 1`` they are exactly those :meth:`TextVAE.forward` draws from
    the same generator state (``randn`` of ``B * Z`` numbers either way). Prior and posterior densities are
    the model's own (:class:`~textvae.model.latent.LatentMixin`), so every prior/posterior family works.
    """
    eps = torch.randn((*mu.shape[:1], num_samples, mu.shape[1]), generator=generator, device=mu.device)
    mu, logvar = mu.unsqueeze(1), logvar.unsqueeze(1)
    z = model.sample_posterior(mu, logvar, eps)  # [B, K, Z]
    log_px = log_likelihood_given_z(model, batch, z, chunk_size=chunk_size)
    kl = model.log_posterior(z, mu, logvar, eps) - model.log_prior(z)
    return log_px - kl, log_px, kl


@torch.no_grad()
def exact_nll(model: TextVAE, batch: Batch) -> Tensor:
    """Exact ``-log p(x)`` of a language model (``use_latent=False``): ``[B]`` nats per sentence."""
    if model.has_latent:
        raise ValueError("exact_nll needs a language model; use iw_nll for a VAE")
    return -log_likelihood_given_z(model, batch, None)


@torch.no_grad()
def iw_nll(
    model: TextVAE,
    batch: Batch,
    num_samples: int = 500,
    *,
    chunk_size: int | None = 256,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Importance-weighted upper bound on ``-log p(x)`` per sentence: ``[B]`` nats.

    ``NLL ~= -(logsumexp_k log w_k - log K)`` with ``K = num_samples`` draws from q(z|x). Each sentence is
    repeated over its samples for the decoder, ``chunk_size`` (sentence, sample) pairs per call (memory
    ~ ``chunk_size * length * vocab`` logits). ``generator`` (on the model's device) makes it reproducible.
    For a language model the likelihood is exact and this returns :func:`exact_nll`.
    """
    if num_samples < 1:
        raise ValueError("num_samples must be >= 1")
    if not model.has_latent:
        return exact_nll(model, batch)
    with eval_mode(model):
        batch = batch.to(model.device)
        mu, logvar = model.encode_batch(batch)
        log_w, _, _ = importance_terms(model, batch, mu, logvar, num_samples, chunk_size, generator)
    return -(torch.logsumexp(log_w, dim=1) - math.log(num_samples))


def mutual_information_from_posteriors(
    mu: Tensor,
    logvar: Tensor,
    *,
    num_samples: int = 1,
    generator: torch.Generator | None = None,
    entropy: str = "sample",
    max_elements: int = 1 << 24,
    vmf_kappa: float | None = None,
) -> float:
    """``I(x; z)`` under q, in nats, from posteriors ``mu, logvar [N, Z]`` (He et al. 2019, ``calc_mi``).

    ``I = E_x E_q(z|x)[log q(z|x)] - E_z[log q(z)]`` with the aggregate posterior ``q(z)`` taken as the
    uniform mixture of all N posteriors, evaluated at ``num_samples`` draws from each ``q(z|x_n)``. The
    mixture includes each sentence's own posterior, so the estimate lies in ``[0, log N]`` up to noise.

    ``entropy="sample"`` (default) estimates the first term with the same draws, so its noise cancels
    against the second term's: a posterior that ignores x gives exactly 0. ``entropy="analytic"`` uses
    the Gaussian's closed-form entropy as He et al. do (same expectation, more variance). The mixture is
    evaluated in chunks of at most ``max_elements`` numbers, so memory stays bounded for any N.

    ``vmf_kappa``: the posteriors are von Mises-Fisher with mean directions ``mu`` and this concentration
    (``logvar`` is then unused); the normaliser is the same for every sentence and cancels.
    """
    if mu.dim() != 2 or mu.shape != logvar.shape:
        raise ValueError("mu and logvar must both be [N, Z]")
    mu, logvar = mu.float(), logvar.float()
    n, zdim = mu.shape
    eps = torch.randn((n, num_samples, zdim), generator=generator, device=mu.device)
    rows = max(1, max_elements // max(n * zdim, 1))
    if vmf_kappa is not None:
        z = sample_vmf(mu.unsqueeze(1), vmf_kappa, eps)  # [N, S, Z]
        first = (vmf_kappa * (z * mu.unsqueeze(1)).sum(-1)).double().mean()
        z = z.reshape(n * num_samples, zdim)
        log_qz_sum = sum(
            (torch.logsumexp(vmf_kappa * zc @ mu.T, dim=1) - math.log(n)).double().sum() for zc in z.split(rows)
        )
        return float(first - log_qz_sum / z.shape[0])
    z = (mu.unsqueeze(1) + eps * (0.5 * logvar).exp().unsqueeze(1)).reshape(n * num_samples, zdim)
    if entropy == "sample":
        first = (-0.5 * (eps.pow(2) + logvar.unsqueeze(1) + LOG_2PI).sum(-1)).double().mean()
    elif entropy == "analytic":
        first = (-0.5 * (1.0 + logvar + LOG_2PI).sum(-1)).double().mean()
    else:
        raise ValueError(f"entropy must be 'sample' or 'analytic', got {entropy!r}")
    inv_var = (-logvar).exp()
    log_qz_sum = torch.zeros((), dtype=torch.float64, device=mu.device)
    for start in range(0, z.shape[0], rows):
        zc = z[start : start + rows]  # [r, Z] against all N components: [r, N, Z]
        maha = ((zc.unsqueeze(1) - mu.unsqueeze(0)).pow(2) * inv_var.unsqueeze(0) + logvar.unsqueeze(0)).sum(-1)
        log_comp = -0.5 * (maha + zdim * LOG_2PI)  # [r, N] log q(z_r | x_j)
        log_qz_sum += (torch.logsumexp(log_comp, dim=1) - math.log(n)).double().sum()
    return float(first - log_qz_sum / z.shape[0])


@torch.no_grad()
def mutual_information(
    model: TextVAE,
    batches: Iterable[Batch],
    num_samples: int = 1,
    *,
    generator: torch.Generator | None = None,
    entropy: str = "sample",
) -> float:
    """``I(x; z)`` in nats over all sentences in ``batches`` (see :func:`mutual_information_from_posteriors`).

    The aggregate posterior is the mixture over the whole evaluated set, not per batch. 0 for a language model.
    """
    if not model.has_latent:
        return 0.0
    mu, logvar = collect_posteriors(model, batches)
    return mutual_information_from_posteriors(
        mu, logvar, num_samples=num_samples, generator=generator, entropy=entropy, vmf_kappa=_vmf_kappa(model)
    )


def _vmf_kappa(model: TextVAE) -> float | None:
    return model.config.vmf_kappa if model.config.posterior == "vmf" else None


@torch.no_grad()
def evaluate_corpus(
    model: TextVAE,
    token_ids: Sequence[Sequence[int]],
    *,
    iw_samples: int = 500,
    batch_size: int = 32,
    chunk_size: int | None = 256,
    seed: int = 0,
    mi_samples: int = 1,
    au_threshold: float = 0.01,
    max_batch_tokens: int | None = None,
    progress: bool | ProgressCallback = True,
    labels: Sequence[int] | None = None,
) -> dict[str, float | int | None]:
    """The standard likelihood report of a sentence VAE (or LM) over a tokenized corpus.

    ``token_ids`` are sentences of token ids without ``<s>``/``</s>``. Returns (nats; "per sentence" =
    mean over sentences):

    - ``rec``: ``E_q[-log p(x|z)]`` per sentence, averaged over the ``iw_samples`` draws (one draw when
      ``iw_samples=0``); ``kl``: ``KL(q(z|x) || p(z))``, closed-form when the model's family has one
      (:attr:`TextVAE.analytic_kl`), else the mean of ``log q - log p`` over the same draws; ``neg_elbo = rec + kl``;
    - ``nll_iw``: importance-weighted NLL bound with ``iw_samples`` samples (exact NLL for an LM), or None
      when ``iw_samples=0``;
    - ``ppl = exp(total NLL / num_tokens)`` using ``nll_iw`` — or, when ``iw_samples=0``, the negative ELBO
      (then an upper bound, looser than the IW one); ``ppl_elbo`` always uses the negative ELBO;
    - the compression view, in bits: ``bits_per_word`` (``log2 ppl``: bits per target token, so per word and
      end token with a word-level tokenizer), ``rate_bits`` (KL per sentence) and ``distortion_bits``
      (reconstruction per sentence), whose sum is the negative ELBO in bits;
    - ``mi`` (:func:`mutual_information_from_posteriors` over the corpus), ``au`` (active units at
      ``au_threshold`` over posterior means); ``num_sentences``; ``num_tokens`` (``sum(len + 1)``);
      ``iw_samples``; ``seconds`` (wall time).

    For an LM ``kl = mi = au = 0`` and ``rec = neg_elbo = nll_iw`` = the exact NLL. Cost is about
    ``iw_samples`` decoder passes over the corpus; ``progress=True`` shows a tqdm bar (stderr) with an
    ETA, or pass ``callback(sentences_done, total)``. Lower ``iw_samples`` if the ETA is too long.
    Sampling is seeded by ``seed``; MI uses its own stream, so it does not change with ``iw_samples``.
    ``labels`` (one label id per sentence) are required by a conditional model and ignored otherwise.
    """
    if iw_samples < 0:
        raise ValueError("iw_samples must be >= 0")
    total = len(token_ids)
    if total == 0:
        raise ValueError("no sentences to evaluate")
    # Built once (and checked before the bar opens): the encoder pass and the decoder passes share them.
    batches = list(eval_batches(model, token_ids, labels, batch_size, max_batch_tokens=max_batch_tokens))
    is_lm = not model.has_latent
    t0 = time.perf_counter()
    mu_all = logvar_all = None
    if not is_lm:  # one encoder pass, over the same batches as below (so the same numbers)
        mu_all, logvar_all = collect_posteriors(model, (b for _, b in batches))  # in batch order
    gen = torch.Generator(device=model.device).manual_seed(seed)
    gen_mi = torch.Generator(device=model.device).manual_seed(seed + 1)
    have_nll = is_lm or iw_samples > 0
    rec_sum = kl_sum = nll_sum = 0.0
    n_sent = n_tok = 0
    desc = "exact NLL" if is_lm else f"IW NLL (K={iw_samples})"
    with report_progress(progress, total, desc) as report, eval_mode(model):
        start = 0
        for _, batch in batches:
            if is_lm:
                rec_b = nll_b = -log_likelihood_given_z(model, batch, None)
            else:
                mu, logvar = mu_all[start : start + len(batch)], logvar_all[start : start + len(batch)]
                kl_b = model.closed_form_kl(mu, logvar)  # None: estimated from the draws below
                if iw_samples > 0:
                    log_w, log_px, kl_k = importance_terms(model, batch, mu, logvar, iw_samples, chunk_size, gen)
                    nll_b = -(torch.logsumexp(log_w, dim=1) - math.log(iw_samples))
                    rec_b = -log_px.mean(dim=1)
                    kl_b = kl_k.mean(dim=1) if kl_b is None else kl_b
                else:
                    z = model.reparameterize(mu, logvar, gen)
                    rec_b = -log_likelihood_given_z(model, batch, z)
                    kl_b = model.log_posterior(z, mu, logvar) - model.log_prior(z) if kl_b is None else kl_b
                    nll_b = None
                kl_sum += float(kl_b.sum())
            rec_sum += float(rec_b.sum())
            if nll_b is not None:
                nll_sum += float(nll_b.sum())
            n_sent += len(batch)
            start += len(batch)
            n_tok += batch.num_target_tokens
            shown = nll_sum if have_nll else rec_sum + kl_sum
            ppl = math.exp(min(shown / n_tok, 700.0))
            report.update(len(batch), nll=f"{shown / n_sent:.2f}", ppl=f"{ppl:.1f}")

    neg_elbo_sum = rec_sum + kl_sum
    mi = au = 0
    if not is_lm:
        mi = mutual_information_from_posteriors(
            mu_all, logvar_all, num_samples=mi_samples, generator=gen_mi, vmf_kappa=_vmf_kappa(model)
        )
        au = active_units(mu_all, au_threshold)
    ppl_total = nll_sum if have_nll else neg_elbo_sum
    ln2 = math.log(2.0)
    return {
        "neg_elbo": neg_elbo_sum / n_sent,
        "rec": rec_sum / n_sent,
        "kl": kl_sum / n_sent,
        "nll_iw": nll_sum / n_sent if have_nll else None,
        "ppl": math.exp(min(ppl_total / n_tok, 700.0)),
        "ppl_elbo": math.exp(min(neg_elbo_sum / n_tok, 700.0)),
        # The compression view (Alemi et al. 2018), in bits: the code length per target token of the bound
        # behind ppl (log2 ppl), and the negative ELBO's split into rate (KL) and distortion (reconstruction).
        "bits_per_word": ppl_total / n_tok / ln2,
        "rate_bits": kl_sum / n_sent / ln2,
        "distortion_bits": rec_sum / n_sent / ln2,
        "mi": float(mi),
        "au": int(au),
        "num_sentences": n_sent,
        "num_tokens": n_tok,
        "iw_samples": 0 if is_lm else iw_samples,
        "seconds": time.perf_counter() - t0,
    }
