"""What users do with a latent space, measured: reconstruct, move to another style, walk between two texts.

* :func:`reconstruction_figures` -- greedy decodes of the posterior means against their inputs: corpus BLEU
  (0-100) and the share reproduced exactly.
* :func:`transfer_tradeoff` -- attribute-vector transfer (:mod:`textvae.inference.style`) over a range of
  ``alpha``: the share of outputs an independent classifier (:class:`StyleClassifier`, trained on labelled
  sentences the VAE is not judged on) assigns to the target style, and the outputs' BLEU to their sources.
  More ``alpha`` moves more sentences and keeps less content; :func:`pick_alpha` takes the best balance,
  and :func:`choose_alpha` does all of it on a user's labelled examples (``textvae mix --alpha auto``).
* :func:`interpolation_fluency` -- sentences decoded along straight paths between pairs of real sentences,
  scored by a separately trained language model: their per-token NLL against that of real sentences
  (a ratio near 1 means the paths read like real text), and the share of path points that differ from
  both ends (a path that jumps from one end to the other at once scores 0).

Texts are compared as the VAE's tokenizer sees them (``decode(encode(x))``, space-separated tokens), so an
out-of-vocabulary word is ``<unk>`` on both sides and a perfect autoencoder scores BLEU 100.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from textvae.errors import ParameterError
from textvae.evaluation.scoring import reconstruction_bleu, sentence_scores
from textvae.evaluation.style_classifier import StyleClassifier
from textvae.evaluation.text_metrics import corpus_bleu
from textvae.inference.interpolation import check_path, interpolation_path
from textvae.inference.style import encode_examples, example_word_shares, shifted_texts
from textvae.model.decoding import DecodingConfig

if TYPE_CHECKING:
    from textvae.model.vae import TextVAE


def _greedy(max_length: int) -> DecodingConfig:
    return DecodingConfig(strategy="greedy", max_length=max_length, detokenize=False)


def tokenizer_view(model: TextVAE, texts: Sequence[str]) -> list[str]:
    """``texts`` as the model reads them: ``decode(encode(x))`` after the training data's normalisation
    (case, word tokenization), tokens joined by spaces."""
    return model.decode_ids(model.token_ids(texts))


@torch.no_grad()
def reconstruction_figures(model: TextVAE, texts: Sequence[str], max_length: int = 50) -> dict[str, Any]:
    """``rec_bleu`` (0-100) and ``exact_match`` (0-1) of greedy decodes of the posterior means of ``texts``,
    and ``n``. Texts the model cannot read (empty, all unknown words) are left out."""
    texts = [t for t, ok in zip(texts, model.usable(texts)) if ok]
    if not texts:
        raise ParameterError("no sentence the model can read to reconstruct")
    ids = model.token_ids(texts)
    out = reconstruction_bleu(model, ids, max_length=max_length)
    refs = model.decode_ids(ids)
    exact = sum(h == r for h, r in zip(out["reconstructions"], refs)) / len(refs)
    return {"rec_bleu": out["rec_bleu"], "exact_match": exact, "n": len(refs)}


@torch.no_grad()
def transfer_tradeoff(
    model: TextVAE,
    examples: dict[str, list[str]],
    sources: dict[str, list[str]],
    classifier: StyleClassifier,
    alphas: Sequence[float],
    *,
    max_length: int = 50,
    shift_mode: str = "uniform",
    lm: TextVAE | None = None,
    edit_lm: TextVAE | None = None,
) -> list[dict[str, Any]]:
    """One record per (source style, target style, alpha): ``target_share`` (0-1, the classifier's verdict
    on the outputs), ``bleu`` (0-100, outputs against their sources), ``n``; with a language model ``lm``
    also ``fluency_ratio``: the outputs' per-token NLL under it over their sources' (near 1: they read like
    the real sentences they came from). ``edit_lm``: a language model the edit shift weighs fluency by
    (:func:`~textvae.inference.style_edit.edit_transfer`'s ``lm``; use another one as the judge ``lm``).

    ``examples``: labelled sentences per style whose mean codes give the attribute vectors; ``sources``:
    other sentences per style, each moved to every other style. Every style needs both."""
    if not alphas:
        raise ParameterError("give at least one alpha")
    missing = sorted(set(examples) ^ set(sources)) + [s for s in examples if s not in classifier.styles]
    if missing or len(examples) < 2:
        raise ParameterError(f"styles must match across examples, sources and classifier (check {missing})")
    if lm is not None:
        _check_lm(lm)
    codes = encode_examples(model, examples)
    shares = example_word_shares(model, examples) if shift_mode == "edit" else None
    rows = []
    for src, texts in sources.items():
        texts = [t for t, ok in zip(texts, model.usable(texts)) if ok]
        mu, ids, refs = model.encode_text(texts).mu, model.token_ids(texts), tokenizer_view(model, texts)
        real_nll = lm_nll_per_token(lm, refs) if lm is not None else None
        for tgt in sources:
            if tgt == src:
                continue
            for alpha in alphas:
                hyps = shifted_texts(
                    model, mu, codes[src], codes[tgt], float(alpha), shift_mode, _greedy(max_length),
                    token_ids=ids, word_shares=shares, edit_lm=edit_lm,
                )  # fmt: skip
                share = classifier.share(hyps, tgt)
                rows.append(
                    {"source": src, "target": tgt, "alpha": float(alpha), "target_share": share,
                     "bleu": corpus_bleu(refs, hyps), "n": len(hyps), "shift": shift_mode}
                )  # fmt: skip
                if real_nll is not None:
                    rows[-1]["fluency_ratio"] = lm_nll_per_token(lm, hyps) / real_nll
    return rows


def summarize_tradeoff(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Average the directions of :func:`transfer_tradeoff` per alpha -> ``{alpha, target_share, bleu, gm}``
    (and ``fluency_ratio`` when the rows have it) sorted by alpha; ``gm`` is the geometric mean of the share
    (as a percentage) and BLEU, the usual single figure of style transfer (both must be high for it to be)."""
    by_alpha: dict[float, list[dict[str, Any]]] = {}
    for r in rows:
        by_alpha.setdefault(r["alpha"], []).append(r)
    out = []
    for alpha in sorted(by_alpha):
        rs = by_alpha[alpha]
        share = sum(r["target_share"] for r in rs) / len(rs)
        bleu = sum(r["bleu"] for r in rs) / len(rs)
        out.append({"alpha": alpha, "target_share": share, "bleu": bleu, "gm": math.sqrt(100 * share * bleu)})
        if all("fluency_ratio" in r for r in rs):
            out[-1]["fluency_ratio"] = sum(r["fluency_ratio"] for r in rs) / len(rs)
    return out


def pick_alpha(summary: Sequence[dict[str, Any]]) -> float:
    """The alpha of :func:`summarize_tradeoff`'s best ``gm`` (the smaller alpha on a tie: less drift)."""
    if not summary:
        raise ParameterError("no trade-off rows to pick an alpha from")
    return min(summary, key=lambda r: (-round(r["gm"], 6), r["alpha"]))["alpha"]


#: The steps :func:`choose_alpha` tries by default.
AUTO_ALPHAS = (0.5, 1.0, 1.5, 2.0, 3.0)


def choose_alpha(
    model: TextVAE,
    examples: dict[str, list[str]],
    *,
    alphas: Sequence[float] = AUTO_ALPHAS,
    held_out: int = 100,
    shift_mode: str = "uniform",
    max_length: int = 50,
    seed: int = 0,
    edit_lm: TextVAE | None = None,
) -> tuple[float, list[dict[str, Any]]]:
    """The ``alpha`` a user's own labelled sentences favour: :func:`transfer_tradeoff` on them, then
    :func:`pick_alpha`. Each style's examples are shuffled (seeded); up to ``held_out`` of them (at most
    half) are moved to every other style, and the rest train the judge (:class:`StyleClassifier`) and give
    the attribute vectors, so no sentence judges its own transfer. Returns ``(alpha, summary)``, the
    summary as :func:`summarize_tradeoff` gives it (both directions averaged)."""
    if len(examples) < 2:
        raise ParameterError("choosing alpha needs examples of at least two styles")
    rest, held = {}, {}
    for name, texts in examples.items():
        texts = [t for t, ok in zip(texts, model.usable(texts)) if ok]
        if len(texts) < 4:
            raise ParameterError(
                f"choosing alpha needs at least 4 readable examples of style {name!r}; got {len(texts)}"
            )
        texts = random.Random(seed).sample(texts, len(texts))
        n = min(held_out, len(texts) // 2)
        held[name], rest[name] = texts[:n], texts[n:]
    judge = StyleClassifier.fit(rest, seed=seed)
    summary = summarize_tradeoff(
        transfer_tradeoff(
            model, rest, held, judge, alphas, max_length=max_length, shift_mode=shift_mode, edit_lm=edit_lm
        )
    )
    return pick_alpha(summary), summary


def _check_lm(lm: TextVAE) -> None:
    if lm.has_latent:
        raise ParameterError("the fluency judge must be a language model (a run trained with model.use_latent=false)")


def lm_nll_per_token(lm: TextVAE, texts: Sequence[str], batch_size: int = 64) -> float:
    """Total NLL of ``texts`` under a language model over their total target tokens (each sentence's end
    token counts), nats per token."""
    _check_lm(lm)
    ids = lm.token_ids(texts)
    nll = sentence_scores(lm, ids, batch_size=batch_size, progress=False)
    return float(nll.sum()) / sum(len(x) + 1 for x in ids)


@torch.no_grad()
def interpolation_fluency(
    model: TextVAE,
    lm: TextVAE,
    sentences: Sequence[str],
    *,
    pairs: int = 100,
    steps: int = 7,
    method: str = "linear",
    max_length: int = 50,
    seed: int = 0,
) -> dict[str, Any]:
    """Walk ``steps`` points (both ends included) between the posterior means of ``pairs`` random pairs of
    ``sentences`` and decode each greedily. Returns ``path_nll``, ``real_nll`` (nats per token of the inner
    path points and of the paired sentences themselves under ``lm``), ``fluency_ratio`` (their quotient),
    ``moving_share`` (0-1, inner points whose text differs from both ends' decodes), ``pairs``, ``steps``."""
    _check_lm(lm)
    check_path(steps, method)
    if steps < 3:
        raise ParameterError("a path needs at least 3 steps to have inner points")
    usable = [t for t, ok in zip(sentences, model.usable(sentences)) if ok]
    if len(usable) < 2 * pairs:
        raise ParameterError(f"{pairs} pairs need {2 * pairs} readable sentences; got {len(usable)}")
    chosen = random.Random(seed).sample(usable, 2 * pairs)
    mu = model.encode_text(chosen).mu
    inner, moving = [], 0
    for k in range(pairs):
        _, z = interpolation_path(mu[2 * k], mu[2 * k + 1], steps, method)
        texts = model.generate_text(z, _greedy(max_length))
        inner += texts[1:-1]
        moving += sum(t not in (texts[0], texts[-1]) for t in texts[1:-1])
    path, real = lm_nll_per_token(lm, inner), lm_nll_per_token(lm, tokenizer_view(model, chosen))
    return {
        "path_nll": path, "real_nll": real, "fluency_ratio": path / real,
        "moving_share": moving / len(inner), "pairs": pairs, "steps": steps,
    }  # fmt: skip
