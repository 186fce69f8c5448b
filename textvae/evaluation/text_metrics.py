"""Metrics on generated text: BLEU, self-BLEU (diversity across samples) and distinct-n.

Texts are compared as whitespace tokens (``str.split()``): tokenize and normalise (case, punctuation
spacing) before calling if the two sides were produced differently. BLEU is NLTK's implementation
(Papineni et al. 2002), reported on a 0-100 scale, with smoothing so that short texts with no 4-gram
matches do not score exactly 0 (Chen & Cherry 2014, method 1 by default).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu
from nltk.translate.bleu_score import corpus_bleu as _nltk_corpus_bleu
from nltk.util import ngrams


def _smoothing(method: int):
    """NLTK's smoothing function ``method<k>`` (Chen & Cherry 2014); 0 means none."""
    return getattr(SmoothingFunction(), f"method{method}")


def _weights(max_n: int) -> tuple[float, ...]:
    if max_n < 1:
        raise ValueError("max_n must be >= 1")
    return (1.0 / max_n,) * max_n


def corpus_bleu(
    references: Sequence[str],
    hypotheses: Sequence[str],
    *,
    max_n: int = 4,
    smoothing: int = 1,
) -> float:
    """Corpus-level BLEU (0-100) of ``hypotheses[i]`` against its single reference ``references[i]``.

    N-gram counts are pooled over the corpus before the precisions are taken (not an average of
    sentence scores), as in the usual BLEU. ``max_n``: longest n-gram, uniform weights.
    """
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references for {len(hypotheses)} hypotheses")
    if not hypotheses:
        raise ValueError("no hypotheses to score")
    refs = [[r.split()] for r in references]
    hyps = [h.split() for h in hypotheses]
    return 100.0 * float(
        _nltk_corpus_bleu(refs, hyps, weights=_weights(max_n), smoothing_function=_smoothing(smoothing))
    )


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Distinct-n (Li et al. 2016): unique n-grams / total n-grams over all ``texts`` (0 if there are none)."""
    if n < 1:
        raise ValueError("n must be >= 1")
    grams = [g for t in texts for g in ngrams(t.split(), n)]
    return len(set(grams)) / len(grams) if grams else 0.0


def self_bleu(
    texts: Sequence[str],
    max_n: int = 4,
    sample: int | None = None,
    seed: int = 0,
    *,
    smoothing: int = 1,
) -> float:
    """Self-BLEU (Zhu et al. 2018), 0-100: each text scored as a hypothesis against all the others as
    references (sentence BLEU), averaged. Higher means less diverse; identical texts give 100.

    Cost grows with the square of the number of texts; ``sample`` scores only a random subset of that
    size (drawn with ``seed``), each against the rest of the subset — compare figures only at equal
    ``sample`` (and comparable corpus sizes), since more references can only raise the clipped counts.
    """
    items = list(texts)
    if sample is not None and sample < len(items):
        items = random.Random(seed).sample(items, sample)
    if len(items) < 2:
        raise ValueError("self-BLEU needs at least two texts")
    toks = [t.split() for t in items]
    weights, smooth = _weights(max_n), _smoothing(smoothing)
    scores = [
        sentence_bleu(toks[:i] + toks[i + 1 :], hyp, weights=weights, smoothing_function=smooth)
        for i, hyp in enumerate(toks)
    ]
    return 100.0 * float(sum(scores)) / len(scores)
