"""Paths through latent space (homotopies): linear and spherical interpolation."""

from __future__ import annotations

import torch
from torch import Tensor


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
