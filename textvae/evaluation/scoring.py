"""Sentence-level evaluation: per-sentence NLL (anomaly ranking) and text figures (reconstruction BLEU,
diversity of prior samples). The corpus comes from :func:`textvae.data.eval_data.load_eval_data`.

Units are nats. A sentence of ``n`` tokens has ``n + 1`` target tokens (the end token counts), as in
:mod:`textvae.evaluation.likelihood`, so per-token figures are comparable with its perplexity.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from textvae.data.eval_data import EvalData
from textvae.evaluation.batches import ProgressCallback, eval_batches, posterior_params, report_progress
from textvae.evaluation.likelihood import exact_nll, importance_terms, iw_nll
from textvae.evaluation.text_metrics import corpus_bleu, distinct_n, self_bleu
from textvae.model.decoding import DecodingConfig
from textvae.model.modes import eval_mode

if TYPE_CHECKING:
    from textvae.model.vae import TextVAE


# -- per-sentence NLL -----------------------------------------------------------------------------------
@torch.no_grad()
def sentence_scores(
    model: TextVAE,
    token_ids: Sequence[Sequence[int]],
    labels: Sequence[int] | None = None,
    *,
    iw_samples: int = 100,
    bound: str = "iw",
    batch_size: int = 32,
    chunk_size: int | None = 256,
    seed: int = 0,
    progress: bool | ProgressCallback = True,
) -> Tensor:
    """``-log p(x)`` estimate of each sentence, in input order: ``[N]`` nats.

    ``bound="iw"``: the importance-weighted bound with ``iw_samples`` samples (``iw_samples=1`` is the
    single-sample negative ELBO); ``bound="elbo"``: the negative ELBO with the reconstruction term averaged
    over ``iw_samples`` samples and the KL in closed form where the model's family has one (else averaged over
    the same samples); lower variance than one sample, looser than IW.
    A language model gets its exact NLL whatever the bound. Seeded by ``seed``.
    """
    if bound not in ("iw", "elbo"):
        raise ValueError(f"bound must be 'iw' or 'elbo', got {bound!r}")
    if iw_samples < 1:
        raise ValueError("iw_samples must be >= 1")
    is_lm = not model.has_latent
    # Built (and its arguments checked) before the progress bar opens, so a bad call leaves no bar behind.
    batches = eval_batches(model, token_ids, labels, batch_size)
    gen = torch.Generator(device=model.device).manual_seed(seed)
    out = torch.empty(len(token_ids))
    desc = "exact NLL" if is_lm else f"{bound.upper()} NLL (K={iw_samples})"
    with report_progress(progress, len(token_ids), desc) as report, eval_mode(model):
        for idx, b in batches:
            if is_lm:
                nll = exact_nll(model, b)
            elif bound == "iw":
                nll = iw_nll(model, b, iw_samples, chunk_size=chunk_size, generator=gen)
            else:
                mu, logvar = model.encode_batch(b)
                _, log_px, kl_k = importance_terms(model, b, mu, logvar, iw_samples, chunk_size, gen)
                exact = model.closed_form_kl(mu, logvar)
                nll = -log_px.mean(dim=1) + (kl_k.mean(dim=1) if exact is None else exact)
            out[idx] = nll.float().cpu()
            report.update(len(idx))
    return out


def rank_sentences(data: EvalData, nll: Tensor, *, by: str = "per_token", descending: bool = True) -> list[dict]:
    """Records ``{rank, row, text, nll, tokens, nll_per_token}`` sorted by ``by`` (``per_token``: NLL per
    target token, which does not favour long sentences; ``nll``: per sentence; ``row``: file order).
    Descending puts the least likely (most anomalous) sentences first."""
    if by not in ("per_token", "nll", "row"):
        raise ValueError(f"by must be per_token, nll or row; got {by!r}")
    recs = []
    for i, (text, row) in enumerate(zip(data.texts, data.rows)):
        tokens = len(data.token_ids[i]) + 1  # the end token counts, as for perplexity
        v = float(nll[i])
        recs.append({"row": row, "text": text, "nll": v, "tokens": tokens, "nll_per_token": v / tokens})
    key = "nll_per_token" if by == "per_token" else by
    recs.sort(key=lambda r: r[key], reverse=descending and by != "row")
    return [{"rank": k + 1, **r} for k, r in enumerate(recs)]


# -- text figures ---------------------------------------------------------------------------------------
@torch.no_grad()
def reconstruction_bleu(
    model: TextVAE,
    token_ids: Sequence[Sequence[int]],
    labels: Sequence[int] | None = None,
    *,
    max_length: int = 50,
    batch_size: int = 64,
) -> dict[str, Any]:
    """Corpus BLEU (0-100) of greedy decodes of the posterior means against the inputs.

    References are the inputs as the tokenizer sees them (``decode(encode(x))``: out-of-vocabulary words
    are ``<unk>`` on both sides), so a perfect autoencoder scores 100. Returns ``rec_bleu`` and
    ``reconstructions`` (input order)."""
    mu, _ = posterior_params(model, token_ids, labels, batch_size)
    greedy = DecodingConfig(strategy="greedy", max_length=max_length)
    lab = None if labels is None or not model.config.conditional else torch.tensor(labels, device=model.device)
    hyps: list[str] = []
    for s in range(0, len(token_ids), batch_size):
        sub = None if lab is None else lab[s : s + batch_size]
        hyps += model.decode_ids(model.generate(mu[s : s + batch_size], decoding=greedy, labels=sub))
    refs = model.decode_ids(token_ids)
    return {"rec_bleu": corpus_bleu(refs, hyps), "reconstructions": hyps}


@torch.no_grad()
def prior_diversity(
    model: TextVAE,
    num_samples: int,
    decoding: DecodingConfig | None = None,
    *,
    seed: int = 0,
    label_ids: Sequence[int] | None = None,
    self_bleu_sample: int | None = 500,
) -> dict[str, Any]:
    """Diversity of ``num_samples`` sentences decoded from prior draws z ~ N(0, I) (from the LM itself when
    there is no latent): ``distinct_1``, ``distinct_2`` (unique / total n-grams, 0-1) and ``self_bleu``
    (0-100, lower is more diverse; on a random ``self_bleu_sample`` of them, as its cost is quadratic).
    A conditional model draws each sample's label uniformly from ``label_ids``. Returns also ``samples``."""
    if num_samples < 2:
        raise ValueError("need at least 2 samples to measure diversity")
    g = torch.Generator(device=model.device).manual_seed(seed)
    lab = None
    if model.config.conditional:
        pool = torch.tensor(sorted(set(label_ids or range(model.config.num_labels))), device=model.device)
        lab = pool[torch.randint(len(pool), (num_samples,), generator=g, device=model.device)]
    z = model.sample_prior(num_samples, g) if model.has_latent else None
    samples = model.decode_ids(model.generate(z, num=num_samples, decoding=decoding, generator=g, labels=lab))
    return {
        "distinct_1": distinct_n(samples, 1),
        "distinct_2": distinct_n(samples, 2),
        "self_bleu": self_bleu(samples, sample=self_bleu_sample, seed=seed),
        "num_samples": num_samples,
        "samples": samples,
    }
