"""Sentences from the prior, and sentences "near" a given one.

Near a sentence x there are two notions of neighbourhood, picked by ``radius``:

* ``radius=None``: draws from the posterior q(z|x) = N(mu, diag(sigma^2)) -- the variations the model
  itself considers consistent with x (as wide as the encoder is uncertain);
* ``radius=r``: draws **uniformly from the ball** ``{z : ||z - mu|| <= r}`` around the posterior mean --
  a neighbourhood of a size you choose, the same in every direction. Uniform in volume: in Z dimensions
  most of a ball's volume lies near its surface, so most draws are at a distance close to ``r``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from textvae.errors import ParameterError
from textvae.model.decoding import DecodingConfig
from textvae.model.vae import TextVAE


def seeded(model: TextVAE, seed: int | None) -> torch.Generator | None:
    """A generator on the model's device seeded with ``seed`` (None: the global RNG)."""
    return torch.Generator(model.device).manual_seed(seed) if seed is not None else None


def ball_samples(center: Tensor, radius: float, n: int, generator: torch.Generator | None = None) -> Tensor:
    """``n`` points uniform in the Euclidean ball of ``radius`` around ``center [Z]`` -> ``[n, Z]``.

    Direction: a normalised standard Gaussian (uniform on the sphere); distance: ``r * U^(1/Z)``, the
    inverse CDF of the radius of a uniform point in a Z-ball (its density grows like ``rho^(Z-1)``)."""
    z = center.shape[-1]
    g = torch.randn((n, z), generator=generator, device=center.device, dtype=center.dtype)
    direction = g / g.norm(dim=1, keepdim=True).clamp_min(1e-12)
    u = torch.rand((n, 1), generator=generator, device=center.device, dtype=center.dtype)
    return center.unsqueeze(0) + direction * radius * u.pow(1.0 / z)


def posterior_samples(
    model: TextVAE, mu: Tensor, logvar: Tensor, n: int, generator: torch.Generator | None = None
) -> Tensor:
    """``n`` codes drawn from one sentence's posterior (the model's family): ``mu, logvar [Z]`` -> ``[n, Z]``."""
    return model.reparameterize(mu.expand(n, -1), logvar.expand(n, -1), generator)


def sample_prior(
    model: TextVAE, n: int, decoding: DecodingConfig | None = None, seed: int | None = None, label: str | None = None
) -> list[str]:
    """``n`` sentences decoded from prior draws (``label`` for a conditional model); seeded."""
    return model.sample(n, decoding, seed=seed, label=label)


def sample_near(
    model: TextVAE,
    sentence: str,
    n: int,
    radius: float | None = None,
    decoding: DecodingConfig | None = None,
    seed: int | None = None,
    label: str | None = None,
) -> list[str]:
    """``n`` sentences decoded near ``sentence``: from its posterior (``radius=None``) or uniformly from
    the ball of ``radius`` around its posterior mean (see the module docstring)."""
    if n < 1:
        raise ParameterError(f"{{n}} must be at least 1, got {n}")
    if radius is not None and not radius >= 0:
        raise ParameterError(f"{{radius}} must be >= 0, got {radius}")
    g = seeded(model, seed)
    labels = [label] if label is not None else None
    post = model.encode_text([sentence], labels)
    mu, logvar = post.mu[0], post.logvar[0]
    z = posterior_samples(model, mu, logvar, n, g) if radius is None else ball_samples(mu, radius, n, g)
    return model.generate_text(z, decoding, g, model.label_ids(labels, n))
