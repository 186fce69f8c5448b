"""Working with posterior means directly: saving codes, analogies and single-dimension traversals.

Sentences are encoded and decoded by the model's own text layer (:class:`textvae.model.text_api.TextMixin`),
which checks them first.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from textvae.errors import ParameterError
from textvae.model.decoding import DecodingConfig
from textvae.model.text_api import Posterior
from textvae.model.vae import TextVAE


def save_codes(posterior: Posterior, path: str | Path, overwrite: bool = False) -> Path:
    """Write ``np.stack([mu, logvar], axis=1)``, shape ``[N, 2, Z]`` float32 (index 0: means, 1:
    log-variances), to a ``.npy`` file; load with ``numpy.load``. An existing file is kept unless
    ``overwrite``; the array goes through a temporary file and a rename, so a failed write leaves no
    partial file and never damages the old one."""
    path = Path(path)
    if path.suffix != ".npy":
        raise ParameterError(f"{{path}} must name a .npy file, got {path}")
    if not path.parent.is_dir():
        raise ParameterError(f"directory not found: {path.parent} (the folder of {{path}})")
    if path.exists() and not overwrite:
        raise ParameterError(
            f"{path} already exists; pass {{overwrite}} to replace it, or choose another {{path}}",
            overwrite="overwrite=True",
        )
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
    mu = model.encode_text([a, b, c], [label] if label is not None else None).mu
    z = analogy_latent(mu[0], mu[1], mu[2]).unsqueeze(0)
    return model.generate_text(z, decoding, generator, model.label_ids([label] if label is not None else None, 1))[0]


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
    model.require_latent()
    size = model.config.latent_size
    if not 0 <= dim < size:
        raise ParameterError(f"{{dim}} must be in [0, {size - 1}] (the model has {size} latent dimensions), got {dim}")
    if steps < 2:
        raise ParameterError(f"{{steps}} must be at least 2, got {steps}")
    if not span > 0:
        raise ParameterError(f"{{span}} must be > 0, got {span}")
    labels = [label] if label is not None else None
    if sentence is not None:
        base = model.encode_text([sentence], labels).mu[0]
    else:
        base = torch.zeros(size, device=model.device)
    offsets = torch.linspace(-span, span, steps)
    z = traversal_latents(base, dim, offsets)
    texts = model.generate_text(z, decoding, generator, model.label_ids(labels, steps))
    return [
        {"step": i, "dim": dim, "offset": round(float(o), 4), "value": round(float(v), 4), "text": t}
        for i, (o, v, t) in enumerate(zip(offsets.tolist(), z[:, dim].tolist(), texts))
    ]
