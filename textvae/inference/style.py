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

Tensor functions take and return ``[N, Z]`` codes; the text functions return decoded sentences.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from textvae.config import DataConfig
from textvae.errors import DataError, ParameterError, TextVAEError
from textvae.model.decoding import DecodingConfig
from textvae.model.vae import TextVAE

METHODS = ("attribute", "dims", "conditional")
#: Default ``|2 AUC - 1|`` above which a latent dimension counts as carrying the style.
DIM_THRESHOLD = 0.5

# -- tensors -----------------------------------------------------------------------------------------


def attribute_vector(source: Tensor, target: Tensor) -> Tensor:
    """``mean(target) - mean(source)``: ``source [Na, Z]``, ``target [Nb, Z]`` -> ``[Z]``."""
    return target.mean(dim=0) - source.mean(dim=0)


def shift(z: Tensor, direction: Tensor, alpha: float = 1.0) -> Tensor:
    """``z + alpha * direction``: ``z [N, Z]``, ``direction [Z]`` -> ``[N, Z]``."""
    return z + alpha * direction.unsqueeze(0)


def dimension_scores(z: Tensor, is_target: Tensor) -> Tensor:
    """How well each dimension alone tells the two groups apart: ``|2 AUC - 1|`` per dimension.
    ``z [N, Z]``, ``is_target [N]`` bool (both groups non-empty) -> ``[Z]`` in [0, 1].

    AUC is the Mann-Whitney statistic: the probability that a random target code has a larger value in
    that dimension than a random source code (ties, which continuous codes don't have, are broken by order)."""
    n1 = int(is_target.sum())
    n0 = z.shape[0] - n1
    if n1 == 0 or n0 == 0:
        raise ValueError("both groups need at least one example")
    ranks = z.argsort(dim=0).argsort(dim=0).to(torch.float64) + 1  # [N, Z], 1-based
    auc = (ranks[is_target].sum(dim=0) - n1 * (n1 + 1) / 2) / (n1 * n0)
    return (2 * auc - 1).abs().to(z.dtype)


def select_dimensions(scores: Tensor, top_k: int | None = None, threshold: float = DIM_THRESHOLD) -> Tensor:
    """Indices ``[D]`` (ascending) of the ``top_k`` best-scoring dimensions, or of all scoring at least
    ``threshold``; never empty (the best one is taken if none passes), so mixing always changes something."""
    if top_k is not None:
        if not 1 <= top_k <= scores.numel():
            raise ParameterError(f"{{top_k}} must be in [1, {scores.numel()}], got {top_k}")
        return scores.topk(top_k).indices.sort().values
    dims = (scores >= threshold).nonzero().squeeze(1)
    return dims if dims.numel() else scores.argmax().reshape(1)


def mix_dimensions(content: Tensor, style: Tensor, dims: Tensor) -> Tensor:
    """``content [N, Z]`` with dimensions ``dims [D]`` replaced by ``style``'s (``[Z]`` or ``[N, Z]``)."""
    out = content.clone()
    out[:, dims] = style.expand_as(content)[:, dims]
    return out


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
) -> list[str]:
    """Decode ``mu(sentence) + alpha * (mean(z | target) - mean(z | source))`` for each sentence."""
    direction = attribute_vector(*split_styles(codes, target, source))
    z = shift(model.encode_text(sentences).mu, direction, alpha)
    return model.generate_text(z, decoding, generator)


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
