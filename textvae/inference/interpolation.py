"""Paths through latent space (homotopies, Bowman et al. 2016): linear and spherical interpolation
between two codes, piecewise paths through several, and the text-level walks between sentences (their
posterior means) or between random points of the prior."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from textvae.errors import ParameterError
from textvae.model.decoding import DecodingConfig
from textvae.model.vae import TextVAE

METHODS = ("linear", "slerp")


def lerp(a: Tensor, b: Tensor, alphas: Tensor) -> Tensor:
    """Points ``(1 - t) a + t b`` for each ``t`` in ``alphas [N]``: ``a, b [Z]`` -> ``[N, Z]``."""
    t = alphas.to(a.dtype).unsqueeze(1)
    return (1 - t) * a.unsqueeze(0) + t * b.unsqueeze(0)


def slerp(a: Tensor, b: Tensor, alphas: Tensor) -> Tensor:
    """Spherical interpolation (Shoemake 1985): follows the great circle between ``a`` and ``b`` so
    intermediate points keep a norm typical of the Gaussian prior; falls back to :func:`lerp` for
    (anti)parallel vectors. ``a, b [Z]``, ``alphas [N]`` -> ``[N, Z]``."""
    cos = torch.dot(a, b) / (a.norm() * b.norm()).clamp_min(1e-12)
    omega = torch.arccos(cos.clamp(-1.0, 1.0))
    if omega.abs() < 1e-4 or (torch.pi - omega).abs() < 1e-4:
        return lerp(a, b, alphas)
    t = alphas.to(a.dtype).unsqueeze(1)
    so = torch.sin(omega)
    return (torch.sin((1 - t) * omega) / so) * a.unsqueeze(0) + (torch.sin(t * omega) / so) * b.unsqueeze(0)


def interpolation_path(a: Tensor, b: Tensor, steps: int, method: str = "linear") -> tuple[Tensor, Tensor]:
    """``steps`` evenly spaced points from ``a`` to ``b`` (both ends included) -> ``(alphas [N], z [N, Z])``."""
    if steps < 2:
        raise ValueError("an interpolation needs at least 2 steps")
    alphas = torch.linspace(0.0, 1.0, steps)
    fn = {"linear": lerp, "slerp": slerp}.get(method)
    if fn is None:
        raise ValueError(f"unknown interpolation method {method!r}; use linear or slerp")
    return alphas, fn(a, b, alphas.to(a.device))


def piecewise_path(points: Tensor, steps: int, method: str = "linear") -> tuple[Tensor, Tensor]:
    """A path through ``points [K, Z]`` (K >= 2) in order: ``steps`` points per segment, both ends
    included, each shared end listed once -> ``(alphas [M], z [M, Z])`` with ``M = (K - 1)(steps - 1) + 1``.

    ``alphas`` is the position along the path in units of segments: ``alpha == k`` is exactly
    ``points[k]``, so for two points it runs from 0 to 1 like :func:`interpolation_path`'s."""
    if points.shape[0] < 2:
        raise ValueError("a path needs at least 2 points")
    alphas, zs = [], []
    for k in range(points.shape[0] - 1):
        a, z = interpolation_path(points[k], points[k + 1], steps, method)
        first = 0 if k == 0 else 1  # the segment's start is the previous segment's end
        alphas.append(a[first:] + k)
        zs.append(z[first:])
    return torch.cat(alphas), torch.cat(zs)


def check_path(steps: int, method: str) -> None:
    """Raise :class:`ParameterError` for fewer than 2 steps or an unknown method."""
    if steps < 2:
        raise ParameterError(f"{{steps}} must be at least 2 (both ends are included), got {steps}")
    if method not in METHODS:
        raise ParameterError(f"unknown interpolation {{method}} {method!r}; use {' or '.join(METHODS)}")


def _walk(
    model: TextVAE,
    points: Tensor,
    steps: int,
    method: str,
    decoding: DecodingConfig | None,
    label: str | None,
    generator: torch.Generator | None,
) -> list[dict]:
    alphas, z = piecewise_path(points, steps, method)
    texts = model.generate_text(z, decoding, generator, model.label_ids([label] if label is not None else None, len(z)))
    return [{"step": i, "alpha": round(float(a), 4), "text": t} for i, (a, t) in enumerate(zip(alphas.tolist(), texts))]


def interpolate(
    model: TextVAE,
    sentences: Sequence[str],
    steps: int,
    method: str = "linear",
    decoding: DecodingConfig | None = None,
    label: str | None = None,
    generator: torch.Generator | None = None,
) -> list[dict]:
    """Encode ``sentences`` (two or more) to their posterior means and decode ``steps`` points per segment
    of the path through them -> records ``{"step", "alpha", "text"}`` (alpha as in :func:`piecewise_path`).
    A conditional model encodes and decodes every point with ``label``."""
    check_path(steps, method)
    if len(sentences) < 2:
        raise ParameterError("give at least two sentences to interpolate between (or random prior points)")
    mu = model.encode_text(sentences, [label] if label is not None else None).mu
    return _walk(model, mu, steps, method, decoding, label, generator)


def interpolate_random(
    model: TextVAE,
    steps: int,
    method: str = "linear",
    decoding: DecodingConfig | None = None,
    label: str | None = None,
    generator: torch.Generator | None = None,
    num_points: int = 2,
) -> list[dict]:
    """Like :func:`interpolate`, between ``num_points`` random draws from the prior N(0, I) (``generator``
    seeds them and any sampling in decoding)."""
    check_path(steps, method)
    model.require_latent()
    if num_points < 2:
        raise ParameterError(f"a random path needs at least 2 points ({{num_points}}), got {num_points}")
    return _walk(model, model.sample_prior(num_points, generator), steps, method, decoding, label, generator)
