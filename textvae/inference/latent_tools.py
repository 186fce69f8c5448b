"""Working with posterior means directly: validated encoding, decoding, saving codes, analogies and
single-dimension traversals.

Every text-level function here checks its input sentences first (:func:`check_sentences`): an empty
sentence, or one whose every token is ``<unk>``, would be encoded to a meaningless code without any sign
of trouble, so it is refused with a :class:`TextVAEError` instead.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from textvae.data.text import normalize_text
from textvae.errors import TextVAEError
from textvae.model.decoding import DecodingConfig
from textvae.model.vae import Posterior, TextVAE

#: Sentences encoded per forward pass (bounds memory for long example lists).
ENCODE_CHUNK = 512


def _problems(model: TextVAE, sentences: Sequence[str]) -> list[str | None]:
    """Why each sentence cannot be encoded meaningfully (None when it can), tokenized in one batch."""
    tok = model._require_tokenizer()
    ids = tok.encode_batch([normalize_text(s, model.data_config) for s in sentences])
    out: list[str | None] = []
    for raw, x in zip(sentences, ids):
        if not raw.strip() or not x:
            out.append("a sentence is empty; give some text")
        elif all(i == tok.unk_id for i in x):
            out.append(f"every word of {raw.strip()!r} is unknown to the model; use words from its training data")
        else:
            out.append(None)
    return out


def check_sentences(model: TextVAE, sentences: Sequence[str]) -> None:
    """Raise :class:`TextVAEError` for an empty list, an empty sentence, or a sentence of only unknown
    words (every token id is ``<unk>``: the model would see nothing of it)."""
    if not sentences:
        raise TextVAEError("no sentence given")
    problem = next((p for p in _problems(model, sentences) if p), None)
    if problem:
        raise TextVAEError(problem)


def usable(model: TextVAE, sentences: Sequence[str]) -> list[bool]:
    """Which sentences :func:`check_sentences` would accept (for filtering example data, not user input)."""
    return [p is None for p in _problems(model, sentences)] if sentences else []


def require_latent(model: TextVAE) -> None:
    """Refuse latent-space work on a plain language model (``model.use_latent=false``)."""
    if model.encoder is None:
        raise TextVAEError(
            "this model is a language model without a latent (model.use_latent=false); it can only sample"
        )


def labels_for(model: TextVAE, label: str | None, n: int) -> Tensor | None:
    """``[n]`` label ids for a conditional model (``label`` repeated), None for an unconditional one;
    a missing, unknown or superfluous label raises :class:`TextVAEError`."""
    return model.label_ids([label] if label is not None else None, n)


@torch.no_grad()
def encode_sentences(model: TextVAE, sentences: Sequence[str], labels: Sequence[str] | None = None) -> Posterior:
    """Checked, chunked :meth:`TextVAE.encode_text`: ``N`` sentences -> ``Posterior(mu [N, Z], logvar [N, Z])``.
    ``labels``: one label per sentence, or a single label for all (conditional models only)."""
    require_latent(model)
    check_sentences(model, sentences)
    if labels is not None and len(labels) == 1:
        labels = list(labels) * len(sentences)
    parts = [
        model.encode_text(sentences[i : i + ENCODE_CHUNK], None if labels is None else labels[i : i + ENCODE_CHUNK])
        for i in range(0, len(sentences), ENCODE_CHUNK)
    ]
    return Posterior(torch.cat([p.mu for p in parts]), torch.cat([p.logvar for p in parts]))


@torch.no_grad()
def decode_latents(
    model: TextVAE,
    z: Tensor,
    decoding: DecodingConfig | None = None,
    generator: torch.Generator | None = None,
    labels: Tensor | None = None,
) -> list[str]:
    """Decode ``z [N, Z]`` (``labels [N]`` for a conditional model) to ``N`` sentences, readable unless
    ``decoding.detokenize`` is False."""
    ids = model.generate(z, decoding=decoding, generator=generator, labels=labels)
    return model.decode_ids(ids, (decoding or DecodingConfig()).detokenize)


def save_codes(posterior: Posterior, path: str | Path, overwrite: bool = False) -> Path:
    """Write ``np.stack([mu, logvar], axis=1)``, shape ``[N, 2, Z]`` float32 (index 0: means, 1:
    log-variances), to a ``.npy`` file; load with ``numpy.load``. An existing file is kept unless
    ``overwrite``; the array goes through a temporary file and a rename, so a failed write leaves no
    partial file and never damages the old one."""
    path = Path(path)
    if path.suffix != ".npy":
        raise TextVAEError(f"--output must name a .npy file, got {path}")
    if not path.parent.is_dir():
        raise TextVAEError(f"directory not found: {path.parent}")
    if path.exists() and not overwrite:
        raise TextVAEError(f"{path} already exists; pass --force to replace it, or choose another --output")
    array = torch.stack([posterior.mu, posterior.logvar], dim=1).cpu().numpy().astype(np.float32)
    tmp = path.with_name(f".{path.stem}.tmp.npy")
    try:
        np.save(tmp, array)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def analogy_latent(a: Tensor, b: Tensor, c: Tensor) -> Tensor:
    """``a - b + c``: "a is to b as ? is to c" (``[..., Z]`` each -> ``[..., Z]``)."""
    return a - b + c


def analogy(
    model: TextVAE,
    a: str,
    b: str,
    c: str,
    decoding: DecodingConfig | None = None,
    label: str | None = None,
    generator: torch.Generator | None = None,
) -> str:
    """Decode ``mu(a) - mu(b) + mu(c)`` (posterior means): applies the change b -> a to c."""
    mu = encode_sentences(model, [a, b, c], [label] if label is not None else None).mu
    z = analogy_latent(mu[0], mu[1], mu[2]).unsqueeze(0)
    return decode_latents(model, z, decoding, generator, labels_for(model, label, 1))[0]


def traversal_latents(base: Tensor, dim: int, offsets: Tensor) -> Tensor:
    """``base [Z]`` with dimension ``dim`` shifted by each of ``offsets [N]`` -> ``[N, Z]``."""
    z = base.unsqueeze(0).repeat(offsets.shape[0], 1)
    z[:, dim] += offsets.to(z)
    return z


def traverse(
    model: TextVAE,
    dim: int,
    steps: int = 7,
    sentence: str | None = None,
    span: float = 3.0,
    decoding: DecodingConfig | None = None,
    label: str | None = None,
    generator: torch.Generator | None = None,
) -> list[dict]:
    """Vary latent dimension ``dim`` by offsets evenly spaced in ``[-span, +span]`` prior standard
    deviations (the prior is N(0, I), so one standard deviation is 1) around ``sentence``'s posterior
    mean, or around the origin (the prior's mode) without a sentence; decode each point.

    Returns ``steps`` records ``{"step", "dim", "offset", "value", "text"}`` where ``value`` is the
    dimension's coordinate after the shift.
    """
    require_latent(model)
    size = model.config.latent_size
    if not 0 <= dim < size:
        raise TextVAEError(f"--dim must be in [0, {size - 1}] (the model has {size} latent dimensions), got {dim}")
    if steps < 2:
        raise TextVAEError(f"--steps must be at least 2, got {steps}")
    if not span > 0:
        raise TextVAEError(f"--span must be > 0, got {span}")
    if sentence is not None:
        base = encode_sentences(model, [sentence], [label] if label is not None else None).mu[0]
    else:
        base = torch.zeros(size, device=model.device)
    offsets = torch.linspace(-span, span, steps)
    z = traversal_latents(base, dim, offsets)
    texts = decode_latents(model, z, decoding, generator, labels_for(model, label, steps))
    return [
        {"step": i, "dim": dim, "offset": round(float(o), 4), "value": round(float(v), 4), "text": t}
        for i, (o, v, t) in enumerate(zip(offsets.tolist(), z[:, dim].tolist(), texts))
    ]
