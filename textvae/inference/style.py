"""Style mixing: put the style of one group of sentences onto the content of another, three ways.

* **Attribute vectors** -- ``d = mean(z | target style) - mean(z | source style)`` over the posterior
  means of labelled examples; a sentence moves to ``z + alpha * d``. The default ``alpha = 1`` moves it
  exactly as far as the two style means are apart: if each style's codes are a shifted copy of the other's
  (``z = m_style + content``), it maps a source sentence ``m_A + c`` to ``m_B + c`` -- the same content with
  the target style's mean -- which is the least change that makes it typical of the target style. Larger
  alphas exaggerate the style (and drift from the content); a sentence already in the target style is
  pushed further along ``d``, by the same amount.
* **Dimension mixing** -- each latent dimension is scored by how well it alone separates the target style
  from the source style: ``|2 AUC - 1|`` (the Gini coefficient of a one-feature classifier, 0 = no better
  than chance, 1 = perfect; rank-based, so the scale of a dimension does not matter). The best dimensions
  (top-k, or all above a threshold) are copied from a style sentence (or the target style's mean), the
  others kept from the content sentence.
* **Conditional decoding** -- a conditional VAE keeps the label outside z: encode the content sentence
  with its own label and decode its code with the target label.

The arithmetic on codes is in :mod:`textvae.inference.style_codes` (re-exported here), editing in
:mod:`textvae.inference.style_edit`; the functions here read examples and return sentences.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from textvae.config import DataConfig
from textvae.errors import DataError, ParameterError, TextVAEError
from textvae.inference.style_codes import (  # noqa: F401 (re-exported: the tensor half of style mixing)
    DIM_THRESHOLD,
    LOCAL_FRACTION,
    attribute_shift,
    attribute_vector,
    calibrated_alphas,
    dimension_scores,
    discriminant,
    local_attribute_vectors,
    mix_dimensions,
    select_dimensions,
    shift,
)
from textvae.inference.style_edit import edit_transfer, example_word_shares  # noqa: F401 (re-exported)
from textvae.model.decoding import DecodingConfig
from textvae.model.vae import TextVAE

METHODS = ("attribute", "dims", "conditional")
#: How far each sentence moves along an attribute vector: all by alpha, each by its own calibrated step, or
#: by the smallest step whose output reads as the target style; or, ``local``, by alpha along its own
#: vector between its nearest examples of the two styles (see :func:`transfer_attribute`); or, ``edit``,
#: not decoded afresh but edited a word at a time (:mod:`textvae.inference.style_edit`).
SHIFT_MODES = ("uniform", "calibrated", "search", "local", "edit")
#: ``textvae mix``'s alpha when none is given: 1 moves a decoded code by the distance between the style
#: means; ``edit`` reads alpha as how hard word choices lean, and on Yelp 3 kept the most content among the
#: settings that moved 85% of held-out tuning sentences (docs/GENERATION.md).
DEFAULT_ALPHA = {"edit": 3.0}
#: The steps ``search`` tries along an attribute vector: multiples of this, up to alpha.
SEARCH_GRID = 0.25
#: Where ``search`` counts an output as the target style: the share of the way from the discriminant's
#: midpoint to the target style's mean score (1: as target-like as a typical target sentence). Measured on
#: Yelp, 0 and 0.5 stopped too early: the judge disagreed with a third of the "crossed" outputs.
SEARCH_MARGIN = 1.0


def default_alpha(shift_mode: str) -> float:
    """The alpha a shift mode uses when none is given (:data:`DEFAULT_ALPHA`, else 1)."""
    return DEFAULT_ALPHA.get(shift_mode, 1.0)


# -- labelled examples -------------------------------------------------------------------------------


def _subsample(texts: list[str], max_examples: int | None, seed: int) -> list[str]:
    """At most ``max_examples`` texts, a seeded random subset in file order (files are often sorted)."""
    if max_examples is None or len(texts) <= max_examples:
        return texts
    keep = sorted(random.Random(seed).sample(range(len(texts)), max_examples))
    return [texts[i] for i in keep]


def _read(path: str, cfg: DataConfig, flag: str = "--data") -> tuple[list[str], list[str] | None]:
    """Texts (and labels) of ``path``; messages name the CLI flags that gave the path and columns."""
    from textvae.data.sources import read_texts

    if not Path(path).expanduser().is_file():
        raise DataError(f"data file not found: {path}; check {flag}")
    ds = read_texts(path, cfg, flag, {"text_column": "--text-column", "label_column": "--label-column"})
    return list(ds["text"]), (list(ds["label"]) if cfg.label_column else None)


def read_labelled(
    path: str, label_column: str, text_column: str = "text", max_examples: int | None = None, seed: int = 0
) -> dict[str, list[str]]:
    """Sentences of a CSV/TSV/JSONL file grouped by the value of ``label_column``: ``{style: [text]}``,
    at most ``max_examples`` per style."""
    texts, labels = _read(path, DataConfig(label_column=label_column, text_column=text_column))
    groups: dict[str, list[str]] = {}
    for t, y in zip(texts, labels or []):
        groups.setdefault(y, []).append(t)
    if len(groups) < 2:
        raise DataError(f"{path}: column '{label_column}' has {len(groups)} distinct value(s); styles need two")
    return {y: _subsample(ts, max_examples, seed) for y, ts in sorted(groups.items())}


def read_style_files(
    style_a: str, style_b: str, max_examples: int | None = None, seed: int = 0
) -> dict[str, list[str]]:
    """One file of sentences per style -> ``{"a": [...], "b": [...]}``, at most ``max_examples`` each."""
    return {
        name: _subsample(_read(p, DataConfig(), f"--style-{name}")[0], max_examples, seed)
        for name, p in (("a", style_a), ("b", style_b))
    }


def check_unconditional(model: TextVAE) -> None:
    """Attribute vectors and dimension mixing work on an unconditional model's codes only."""
    if model.config.conditional:
        raise TextVAEError(
            "this is a conditional VAE: its codes leave the label out, so use conditional decoding "
            "(--method conditional) instead of attribute vectors or dimension mixing"
        )


def encode_examples(model: TextVAE, examples: dict[str, list[str]]) -> dict[str, Tensor]:
    """Posterior means of the example sentences by style: ``{style: mu [N_style, Z]}``. Sentences the model
    cannot read (empty, all unknown words) are skipped; a style left with none is an error."""
    check_unconditional(model)
    codes = {}
    for style, texts in examples.items():
        texts = [t for t, ok in zip(texts, model.usable(texts)) if ok]
        if not texts:
            raise DataError(f"style {style!r} has no example sentence the model can read (empty or unknown words)")
        codes[style] = model.encode_text(texts).mu
    return codes


def check_styles(styles: Sequence[str], target: str, source: str | None = None) -> None:
    """Raise :class:`TextVAEError` unless ``target`` (and ``source``, if given) are distinct known styles."""
    for name in (target, source):
        if name is not None and name not in styles:
            raise TextVAEError(f"style {name!r} is not in the examples; use one of {', '.join(styles)}")
    if source == target:
        raise TextVAEError("the source and target styles are the same")


def split_styles(codes: dict[str, Tensor], target: str, source: str | None = None) -> tuple[Tensor, Tensor]:
    """``(source codes [Na, Z], target codes [Nb, Z])``; the source is every style but the target unless
    named (so with two styles it is simply the other one)."""
    check_styles(list(codes), target, source)
    others = [codes[s] for s in codes if (s == source if source is not None else s != target)]
    return torch.cat(others), codes[target]


# -- text ------------------------------------------------------------------------------------------


def transfer_attribute(
    model: TextVAE,
    sentences: Sequence[str],
    codes: dict[str, Tensor],
    target: str,
    source: str | None = None,
    alpha: float = 1.0,
    decoding: DecodingConfig | None = None,
    generator: torch.Generator | None = None,
    shift_mode: str = "uniform",
    word_shares: Tensor | None = None,
    edit_lm: TextVAE | None = None,
) -> list[str]:
    """Decode ``mu(sentence) + alpha * (mean(z | target) - mean(z | source))`` for each sentence
    (``shift_mode="uniform"``), with each sentence's own step from :func:`calibrated_alphas`
    (``"calibrated"``), the smallest step up to ``alpha`` that the model reads as the target style
    (``"search"``, :func:`searched_transfer`), or along the vector between its nearest examples
    (``"local"``, :func:`local_attribute_vectors`); or edit each sentence toward the target style
    (``"edit"``, :func:`~textvae.inference.style_edit.edit_transfer`, which takes ``word_shares`` and
    ``edit_lm`` as its ``word_shares`` and ``lm``)."""
    mu, ids = model.encode_text(sentences).mu, model.token_ids(sentences)
    src, tgt = split_styles(codes, target, source)
    return shifted_texts(model, mu, src, tgt, alpha, shift_mode, decoding, generator, ids, word_shares, edit_lm)


def shifted_texts(
    model: TextVAE,
    z: Tensor,
    source: Tensor,
    target: Tensor,
    alpha: float,
    shift_mode: str = "uniform",
    decoding: DecodingConfig | None = None,
    generator: torch.Generator | None = None,
    token_ids: Sequence[Sequence[int]] | None = None,
    word_shares: Tensor | None = None,
    edit_lm: TextVAE | None = None,
) -> list[str]:
    """The codes ``z [N, Z]`` moved from the ``source`` codes' style toward the ``target``'s by one of
    :data:`SHIFT_MODES` (:func:`attribute_shift`, or :func:`searched_transfer` for ``search``), decoded;
    for ``edit``, the sentences ``z`` are the codes of (``token_ids``, required) edited instead, writing
    only words common in the examples when given their ``word_shares`` (:func:`example_word_shares`) and
    weighing fluency by a language model too when given one (``edit_lm``)."""
    if shift_mode == "edit":
        if token_ids is None or len(token_ids) != len(z):
            raise ParameterError("the edit shift needs the token ids of the sentences being moved")
        edited = edit_transfer(model, token_ids, source, target, alpha, word_shares=word_shares, lm=edit_lm)
        return model.decode_ids(edited, (decoding or DecodingConfig()).detokenize)
    if shift_mode == "search":
        return searched_transfer(model, z, source, target, alpha, decoding, generator)
    return model.generate_text(attribute_shift(z, source, target, alpha, shift_mode), decoding, generator)


def searched_transfer(
    model: TextVAE,
    z: Tensor,
    source: Tensor,
    target: Tensor,
    alpha: float = 1.0,
    decoding: DecodingConfig | None = None,
    generator: torch.Generator | None = None,
    grid: float = SEARCH_GRID,
) -> list[str]:
    """Each code ``z [N, Z]`` moved along the attribute vector by the smallest step on a grid (``grid``,
    ``2 grid``, ... up to ``alpha``) whose decoding the model itself reads as the target style: re-encoded,
    its posterior mean scores on the two styles' :func:`discriminant` at least as the target style's mean
    does (with ``SEARCH_MARGIN`` 1; 0 would be Fisher's rule, the midpoint). A sentence that never gets
    there gets the step ``alpha``. So each sentence changes only as much as its style needs, which
    one step for all cannot do: short neutral sentences flip early, strongly worded ones later."""
    d, w = attribute_vector(source, target), discriminant(source, target)
    middle = 0.5 * float((source.mean(0) + target.mean(0)) @ w)
    goal = middle + SEARCH_MARGIN * (float(target.mean(0) @ w) - middle)
    steps = [grid * k for k in range(1, math.ceil(alpha / grid - 1e-9))] + [alpha] if alpha > 0 else [0.0]
    texts: list[str | None] = [None] * len(z)
    pending = torch.arange(len(z))
    for i, step in enumerate(steps):
        out = model.generate_text(shift(z[pending], d, step), decoding, generator)
        if i == len(steps) - 1:
            crossed = [True] * len(out)
        else:
            ok = torch.tensor(model.usable(out), dtype=torch.bool)
            score = model.encode_text(out, strict=False).mu @ w - goal if out else torch.zeros(0)
            crossed = (ok & (score > 0)).tolist()
        for j, text, done in zip(pending.tolist(), out, crossed):
            if done:
                texts[j] = text
        pending = pending[~torch.tensor(crossed, dtype=torch.bool)]
        if not len(pending):
            break
    return [t if t is not None else "" for t in texts]


def style_dimensions(
    codes: dict[str, Tensor],
    target: str,
    source: str | None = None,
    top_k: int | None = None,
    threshold: float = DIM_THRESHOLD,
) -> tuple[Tensor, Tensor]:
    """The dimensions that carry the style and all scores: ``(dims [D], scores [Z])``."""
    src, tgt = split_styles(codes, target, source)
    is_target = torch.cat([torch.zeros(len(src), dtype=torch.bool), torch.ones(len(tgt), dtype=torch.bool)])
    scores = dimension_scores(torch.cat([src, tgt]), is_target.to(src.device))
    return select_dimensions(scores, top_k, threshold), scores


def transfer_dimensions(
    model: TextVAE,
    sentences: Sequence[str],
    codes: dict[str, Tensor],
    target: str,
    dims: Tensor,
    style_sentence: str | None = None,
    decoding: DecodingConfig | None = None,
    generator: torch.Generator | None = None,
) -> list[str]:
    """Copy dimensions ``dims [D]`` (from :func:`style_dimensions`) from ``style_sentence``'s mean code
    (default: the mean code of the ``target`` style's examples) onto each sentence's mean, keep its other
    dimensions, decode."""
    style = model.encode_text([style_sentence]).mu[0] if style_sentence else codes[target].mean(dim=0)
    z = mix_dimensions(model.encode_text(sentences).mu, style, dims)
    return model.generate_text(z, decoding, generator)


@torch.no_grad()
def infer_labels(model: TextVAE, sentences: Sequence[str]) -> list[str]:
    """For a conditional model: the label under which each sentence is most likely, by its -ELBO (with z
    at the posterior mean) -- Bayes' rule with a uniform label prior."""
    batch = model.batch_from_text(sentences)
    costs = []
    for i in range(len(model.label_names)):
        lab = torch.full((len(batch),), i, dtype=torch.long, device=model.device)
        out = model(dataclasses.replace(batch, labels=lab), sample=False)  # keeps the encoder's own ids
        costs.append(out.rec_per_sentence + out.kl_per_sentence)
    best = torch.stack(costs, dim=1).argmin(dim=1)
    return [model.label_names[i] for i in best.tolist()]


def transfer_conditional(
    model: TextVAE,
    sentences: Sequence[str],
    target: str,
    source_labels: Sequence[str] | None = None,
    decoding: DecodingConfig | None = None,
    generator: torch.Generator | None = None,
) -> list[str]:
    """Encode each sentence with its own label (``source_labels``: one per sentence or one for all; default
    :func:`infer_labels`) and decode its mean code with the ``target`` label."""
    if not model.config.conditional:
        raise TextVAEError("conditional decoding needs a conditional model (model.conditional=true)")
    target_ids = model.label_ids([target], len(sentences))
    model.check_sentences(sentences)  # before infer_labels reads them
    mu = model.encode_text(sentences, source_labels or infer_labels(model, sentences)).mu
    return model.generate_text(mu, decoding, generator, target_ids)
