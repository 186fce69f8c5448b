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
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from textvae.data.batching import Batch, batch_indices, collate
from textvae.evaluation.metrics import active_units, collect_posteriors
from textvae.model.objective import gaussian_kl

if TYPE_CHECKING:
    from textvae.data.tokenizer import TextTokenizer

LOG_2PI = math.log(2.0 * math.pi)


@contextmanager
def _eval_mode(model: Any) -> Iterator[None]:
    """Evaluate without dropout / word dropout, then restore the caller's mode."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def encoder_tokenizer_of(model: Any) -> TextTokenizer | None:
    """The encoder's own tokenizer (``data.encoder_tokenizer``, e.g. a pretrained BERT's in front of another
    decoder), or None when the encoder reads the decoder's ids - always for a language model (no encoder)."""
    if getattr(model, "encoder", None) is None:
        return None
    return getattr(model, "encoder_tokenizer", None)


def eval_batches(
    model: Any,
    token_ids: Sequence[Sequence[int]],
    labels: Sequence[int] | None = None,
    batch_size: int = 32,
    *,
    encoder_ids: Sequence[Sequence[int]] | None = None,
    max_batch_tokens: int | None = None,
) -> Iterator[tuple[np.ndarray, Batch]]:
    """The evaluation batches of a corpus: ``(indices [B] int64, Batch on the model's device)``, length-sorted,
    deterministic, every sentence exactly once (``indices`` put per-sentence results back in input order).

    ``token_ids`` are the decoder's ids (no ``<s>``/``</s>``). ``labels`` (one id per sentence) are kept for a
    conditional model only. ``encoder_ids`` are the same sentences in the encoder's own tokenizer: required
    when the model has one (:func:`encoder_tokenizer_of`), since its encoder must not read ids of another
    vocabulary, and refused otherwise. Checks run when called, not at the first batch.
    """
    enc = encoder_tokenizer_of(model)
    if enc is not None and encoder_ids is None:
        raise ValueError(
            "this model's encoder has its own tokenizer (data.encoder_tokenizer): pass encoder_ids, the sentences "
            "in that tokenizer (load_eval_data gives them as EvalData.encoder_ids)"
        )
    if enc is None and encoder_ids is not None:
        raise ValueError(
            "encoder_ids given, but this model's encoder reads the decoder's ids (no data.encoder_tokenizer)"
        )
    if encoder_ids is not None and len(encoder_ids) != len(token_ids):
        raise ValueError(f"{len(encoder_ids)} encoder id sequences for {len(token_ids)} sentences")
    specials = None if enc is None else (enc.pad_id, enc.bos_id, enc.eos_id)
    c = model.config
    if not getattr(c, "conditional", False):
        labels = None  # an unconditional model takes no label: don't carry them through the batches
    order = batch_indices(
        [len(x) for x in token_ids], batch_size, seed=0, epoch=0, shuffle=False, max_batch_tokens=max_batch_tokens
    )

    def pick(seqs: Sequence | None, idx: np.ndarray) -> list | None:
        return None if seqs is None else [seqs[i] for i in idx]

    def batches() -> Iterator[tuple[np.ndarray, Batch]]:
        for idx in order:
            enc_seqs = pick(encoder_ids, idx)
            b = collate(pick(token_ids, idx), c.pad_id, c.bos_id, c.eos_id, pick(labels, idx), enc_seqs, specials)
            yield idx, b.to(model.device)

    return batches()


def _sentence_nll(model: Any, ids: Tensor, lengths: Tensor, z: Tensor | None, labels: Tensor | None) -> Tensor:
    """Teacher-forced ``-log p(x|z)`` (the model's own :meth:`TextVAE.sentence_nll`): ``[M]`` nats."""
    return model.sentence_nll(ids, lengths, model.decoder_code(z, labels))[0]


@torch.no_grad()
def log_likelihood_given_z(
    model: Any, batch: Batch, z: Tensor | None = None, *, chunk_size: int | None = None
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
    with _eval_mode(model):
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


def _importance_terms(
    model: Any,
    batch: Batch,
    mu: Tensor,
    logvar: Tensor,
    num_samples: int,
    chunk_size: int | None,
    generator: torch.Generator | None,
) -> tuple[Tensor, Tensor]:
    """``(log_w [B, K], log_px [B, K])`` for ``K = num_samples`` codes per sentence.

    All noise ``eps [B, K, Z]`` is drawn up front, in one call: the samples (hence the estimate) do not
    depend on ``chunk_size``, and with ``K = 1`` they are exactly those :meth:`TextVAE.reparameterize`
    draws from the same generator state (``randn`` of ``B * Z`` numbers either way).
    """
    eps = torch.randn((*mu.shape[:1], num_samples, mu.shape[1]), generator=generator, device=mu.device)
    z = mu.unsqueeze(1) + eps * (0.5 * logvar).exp().unsqueeze(1)  # [B, K, Z]
    log_px = log_likelihood_given_z(model, batch, z, chunk_size=chunk_size)
    log_pz = -0.5 * (z.pow(2) + LOG_2PI).sum(-1)
    # (z - mu) / sigma is eps by construction: use it directly rather than divide by a tiny sigma.
    log_qz = -0.5 * (eps.pow(2) + logvar.unsqueeze(1) + LOG_2PI).sum(-1)
    return log_px + log_pz - log_qz, log_px


@torch.no_grad()
def exact_nll(model: Any, batch: Batch) -> Tensor:
    """Exact ``-log p(x)`` of a language model (``use_latent=False``): ``[B]`` nats per sentence."""
    if getattr(model, "encoder", None) is not None:
        raise ValueError("exact_nll needs a language model; use iw_nll for a VAE")
    return -log_likelihood_given_z(model, batch, None)


@torch.no_grad()
def iw_nll(
    model: Any,
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
    if getattr(model, "encoder", None) is None:
        return exact_nll(model, batch)
    with _eval_mode(model):
        batch = batch.to(model.device)
        mu, logvar = model.encode_batch(batch)
        log_w, _ = _importance_terms(model, batch, mu, logvar, num_samples, chunk_size, generator)
    return -(torch.logsumexp(log_w, dim=1) - math.log(num_samples))


def mutual_information_from_posteriors(
    mu: Tensor,
    logvar: Tensor,
    *,
    num_samples: int = 1,
    generator: torch.Generator | None = None,
    entropy: str = "sample",
    max_elements: int = 1 << 24,
) -> float:
    """``I(x; z)`` under q, in nats, from posteriors ``mu, logvar [N, Z]`` (He et al. 2019, ``calc_mi``).

    ``I = E_x E_q(z|x)[log q(z|x)] - E_z[log q(z)]`` with the aggregate posterior ``q(z)`` taken as the
    uniform mixture of all N posteriors, evaluated at ``num_samples`` draws from each ``q(z|x_n)``. The
    mixture includes each sentence's own posterior, so the estimate lies in ``[0, log N]`` up to noise.

    ``entropy="sample"`` (default) estimates the first term with the same draws, so its noise cancels
    against the second term's: a posterior that ignores x gives exactly 0. ``entropy="analytic"`` uses
    the Gaussian's closed-form entropy as He et al. do (same expectation, more variance). The mixture is
    evaluated in chunks of at most ``max_elements`` numbers, so memory stays bounded for any N.
    """
    if mu.dim() != 2 or mu.shape != logvar.shape:
        raise ValueError("mu and logvar must both be [N, Z]")
    mu, logvar = mu.float(), logvar.float()
    n, zdim = mu.shape
    eps = torch.randn((n, num_samples, zdim), generator=generator, device=mu.device)
    z = (mu.unsqueeze(1) + eps * (0.5 * logvar).exp().unsqueeze(1)).reshape(n * num_samples, zdim)
    if entropy == "sample":
        first = (-0.5 * (eps.pow(2) + logvar.unsqueeze(1) + LOG_2PI).sum(-1)).double().mean()
    elif entropy == "analytic":
        first = (-0.5 * (1.0 + logvar + LOG_2PI).sum(-1)).double().mean()
    else:
        raise ValueError(f"entropy must be 'sample' or 'analytic', got {entropy!r}")
    inv_var = (-logvar).exp()
    rows = max(1, max_elements // max(n * zdim, 1))
    log_qz_sum = torch.zeros((), dtype=torch.float64, device=mu.device)
    for start in range(0, z.shape[0], rows):
        zc = z[start : start + rows]  # [r, Z] against all N components: [r, N, Z]
        maha = ((zc.unsqueeze(1) - mu.unsqueeze(0)).pow(2) * inv_var.unsqueeze(0) + logvar.unsqueeze(0)).sum(-1)
        log_comp = -0.5 * (maha + zdim * LOG_2PI)  # [r, N] log q(z_r | x_j)
        log_qz_sum += (torch.logsumexp(log_comp, dim=1) - math.log(n)).double().sum()
    return float(first - log_qz_sum / z.shape[0])


@torch.no_grad()
def mutual_information(
    model: Any,
    batches: Iterable[Batch],
    num_samples: int = 1,
    *,
    generator: torch.Generator | None = None,
    entropy: str = "sample",
) -> float:
    """``I(x; z)`` in nats over all sentences in ``batches`` (see :func:`mutual_information_from_posteriors`).

    The aggregate posterior is the mixture over the whole evaluated set, not per batch. 0 for a language model.
    """
    if getattr(model, "encoder", None) is None:
        return 0.0
    mu, logvar = collect_posteriors(model, batches)
    return mutual_information_from_posteriors(mu, logvar, num_samples=num_samples, generator=generator, entropy=entropy)


ProgressCallback = Callable[[int, int], None]


@torch.no_grad()
def evaluate_corpus(
    model: Any,
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
    encoder_ids: Sequence[Sequence[int]] | None = None,
) -> dict[str, Any]:
    """The standard likelihood report of a sentence VAE (or LM) over a tokenized corpus.

    ``token_ids`` are sentences of token ids without ``<s>``/``</s>``. Returns (nats; "per sentence" =
    mean over sentences):

    - ``rec``: ``E_q[-log p(x|z)]`` per sentence, averaged over the ``iw_samples`` draws (one draw when
      ``iw_samples=0``); ``kl``: analytic ``KL(q(z|x) || p(z))``; ``neg_elbo = rec + kl``;
    - ``nll_iw``: importance-weighted NLL bound with ``iw_samples`` samples (exact NLL for an LM), or None
      when ``iw_samples=0``;
    - ``ppl = exp(total NLL / num_tokens)`` using ``nll_iw`` — or, when ``iw_samples=0``, the negative ELBO
      (then an upper bound, looser than the IW one); ``ppl_elbo`` always uses the negative ELBO;
    - ``mi`` (:func:`mutual_information_from_posteriors` over the corpus), ``au`` (active units at
      ``au_threshold`` over posterior means); ``num_sentences``; ``num_tokens`` (``sum(len + 1)``);
      ``iw_samples``; ``seconds`` (wall time).

    For an LM ``kl = mi = au = 0`` and ``rec = neg_elbo = nll_iw`` = the exact NLL. Cost is about
    ``iw_samples`` decoder passes over the corpus; ``progress=True`` shows a tqdm bar (stderr) with an
    ETA, or pass ``callback(sentences_done, total)``. Lower ``iw_samples`` if the ETA is too long.
    Sampling is seeded by ``seed``; MI uses its own stream, so it does not change with ``iw_samples``.
    ``labels`` (one label id per sentence) are required by a conditional model and ignored otherwise.
    ``encoder_ids`` (the same sentences in the encoder's own tokenizer) are required by a model whose encoder
    has one (``data.encoder_tokenizer``) and refused otherwise; see :func:`eval_batches`.
    """
    if iw_samples < 0:
        raise ValueError("iw_samples must be >= 0")
    total = len(token_ids)
    if total == 0:
        raise ValueError("no sentences to evaluate")
    if labels is not None and len(labels) != total:
        raise ValueError(f"{len(labels)} labels for {total} sentences")
    # Built (and its arguments checked) before the progress bar opens, so a bad call leaves no bar behind.
    batches = eval_batches(
        model, token_ids, labels, batch_size, encoder_ids=encoder_ids, max_batch_tokens=max_batch_tokens
    )
    dev = model.device
    is_lm = getattr(model, "encoder", None) is None
    gen = torch.Generator(device=dev).manual_seed(seed)
    gen_mi = torch.Generator(device=dev).manual_seed(seed + 1)
    bar = None
    if progress is True:
        desc = "exact NLL" if is_lm else f"IW NLL (K={iw_samples})"
        bar = tqdm(total=total, unit="sent", desc=desc, file=sys.stderr, dynamic_ncols=True)
    callback = progress if callable(progress) else None
    have_nll = is_lm or iw_samples > 0

    t0 = time.perf_counter()
    rec_sum = kl_sum = nll_sum = 0.0
    n_sent = n_tok = 0
    mus: list[Tensor] = []
    logvars: list[Tensor] = []
    try:
        with _eval_mode(model):
            for _, batch in batches:
                if is_lm:
                    rec_b = -log_likelihood_given_z(model, batch, None)
                    nll_b = rec_b
                else:
                    mu, logvar = model.encode_batch(batch)
                    mus.append(mu)
                    logvars.append(logvar)
                    kl_sum += float(gaussian_kl(mu, logvar).sum())
                    if iw_samples > 0:
                        log_w, log_px = _importance_terms(model, batch, mu, logvar, iw_samples, chunk_size, gen)
                        nll_b = -(torch.logsumexp(log_w, dim=1) - math.log(iw_samples))
                        rec_b = -log_px.mean(dim=1)
                    else:
                        z = model.reparameterize(mu, logvar, gen)
                        rec_b = -log_likelihood_given_z(model, batch, z)
                        nll_b = None
                rec_sum += float(rec_b.sum())
                if nll_b is not None:
                    nll_sum += float(nll_b.sum())
                n_sent += len(batch)
                n_tok += batch.num_target_tokens
                if bar is not None:
                    bar.update(len(batch))
                    shown = nll_sum if have_nll else rec_sum + kl_sum
                    bar.set_postfix(
                        nll=f"{shown / n_sent:.2f}", ppl=f"{math.exp(min(shown / n_tok, 700.0)):.1f}", refresh=False
                    )
                if callback is not None:
                    callback(n_sent, total)
    finally:
        if bar is not None:
            bar.close()  # also on Ctrl-C, so the terminal is left clean

    neg_elbo_sum = rec_sum + kl_sum
    mi = au = 0
    if not is_lm:
        mu_all, logvar_all = torch.cat(mus), torch.cat(logvars)
        mi = mutual_information_from_posteriors(mu_all, logvar_all, num_samples=mi_samples, generator=gen_mi)
        au = active_units(mu_all, au_threshold)
    ppl_total = nll_sum if have_nll else neg_elbo_sum
    return {
        "neg_elbo": neg_elbo_sum / n_sent,
        "rec": rec_sum / n_sent,
        "kl": kl_sum / n_sent,
        "nll_iw": nll_sum / n_sent if have_nll else None,
        "ppl": math.exp(min(ppl_total / n_tok, 700.0)),
        "ppl_elbo": math.exp(min(neg_elbo_sum / n_tok, 700.0)),
        "mi": float(mi),
        "au": int(au),
        "num_sentences": n_sent,
        "num_tokens": n_tok,
        "iw_samples": 0 if is_lm else iw_samples,
        "seconds": time.perf_counter() - t0,
    }
