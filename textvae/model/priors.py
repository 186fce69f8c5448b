"""Priors p(z) over the space the decoder reads, as densities and samplers (units: nats).

A prior here is one of three shapes, and every function takes its parameters explicitly, so the same code
serves a fixed prior, a learned one and one computed by the encoder (VampPrior):

- the standard normal ``N(0, I)``;
- a mixture of ``K`` diagonal Gaussians ``sum_k pi_k N(m_k, diag(exp(v_k)))``, given as
  :class:`Mixture` (``log_weights [K]``, ``means [K, Z]``, ``logvars [K, Z]``) — both the learned mixture
  (:class:`MixtureParameters`) and VampPrior (the posteriors of :class:`PseudoInputs`) take this shape;
- the uniform distribution on the unit sphere ``S^{Z-1}`` (the prior of the von Mises-Fisher posterior).

Densities broadcast over leading dimensions: ``z [..., Z] -> [...]``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor, nn

LOG_2PI = math.log(2.0 * math.pi)


class Mixture(NamedTuple):
    """A mixture of diagonal Gaussians: ``log_weights [K]`` (normalised), ``means [K, Z]``, ``logvars [K, Z]``."""

    log_weights: Tensor
    means: Tensor
    logvars: Tensor


def normal_log_prob(z: Tensor) -> Tensor:
    """``log N(z; 0, I)``: ``[..., Z] -> [...]``."""
    return -0.5 * (z.pow(2) + LOG_2PI).sum(-1)


def gaussian_log_prob_per_dim(z: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """``log N(z_i; mu_i, exp(logvar_i))`` per dimension; all three broadcast: ``[..., Z]``."""
    return -0.5 * ((z - mu).pow(2) * (-logvar).exp() + logvar + LOG_2PI)


def _component_terms(z: Tensor, mixture: Mixture) -> Tensor:
    """``log N(z_i; m_ki, v_ki)`` for every component: ``z [..., Z] -> [..., K, Z]``."""
    return gaussian_log_prob_per_dim(z.unsqueeze(-2), mixture.means, mixture.logvars)


def mixture_log_prob(z: Tensor, mixture: Mixture) -> Tensor:
    """``log sum_k pi_k N(z; m_k, v_k)``: ``[..., Z] -> [...]`` (exact)."""
    return torch.logsumexp(mixture.log_weights + _component_terms(z, mixture).sum(-1), dim=-1)


def mixture_marginal_log_prob(z: Tensor, mixture: Mixture) -> Tensor:
    """The log density of each coordinate under the mixture's marginal, ``log sum_k pi_k N(z_i; m_ki, v_ki)``:
    ``[..., Z] -> [..., Z]``. Their sum is not the joint density (a mixture couples the coordinates)."""
    return torch.logsumexp(mixture.log_weights.unsqueeze(-1) + _component_terms(z, mixture), dim=-2)


def mixture_responsibilities(z: Tensor, mixture: Mixture) -> Tensor:
    """``p(k | z)`` for each component: ``[..., Z] -> [..., K]`` (rows sum to 1)."""
    joint = mixture.log_weights + _component_terms(z, mixture).sum(-1)
    return torch.softmax(joint, dim=-1)


def sample_mixture(mixture: Mixture, n: int, generator: torch.Generator | None = None) -> Tensor:
    """``n`` draws: a component by its weight, then its Gaussian: ``[n, Z]``."""
    probs = mixture.log_weights.detach().float().exp()
    k = torch.multinomial(probs, n, replacement=True, generator=generator)
    eps = torch.randn((n, mixture.means.shape[1]), generator=generator, device=mixture.means.device)
    return mixture.means[k] + eps * (0.5 * mixture.logvars[k]).exp()


def log_sphere_area(dim: int) -> float:
    """``log`` of the surface area of the unit sphere ``S^{dim-1}`` in ``R^dim``: ``2 pi^{d/2} / Gamma(d/2)``."""
    return math.log(2.0) + 0.5 * dim * math.log(math.pi) - math.lgamma(0.5 * dim)


def sphere_log_prob(z: Tensor) -> Tensor:
    """The uniform density on the unit sphere, ``-log area(S^{Z-1})``, for points ``z [..., Z]`` on it: ``[...]``."""
    return torch.full(z.shape[:-1], -log_sphere_area(z.shape[-1]), device=z.device)


def sample_sphere(n: int, dim: int, generator: torch.Generator | None = None, device=None) -> Tensor:
    """``n`` uniform draws on ``S^{dim-1}``: normalised standard normal vectors, ``[n, dim]``."""
    g = torch.randn((n, dim), generator=generator, device=device)
    return g / g.norm(dim=-1, keepdim=True).clamp_min(1e-12)


#: The spread of a learned mixture's initial means (times ``N(0, I)`` draws).
MEAN_INIT_SCALE = 0.1


class MixtureParameters(nn.Module):
    """The learned parameters of a ``K``-component mixture prior. Means start as small draws
    (:data:`MEAN_INIT_SCALE` ``* N(0, I)``), variances at 1, weights equal; all three are trained with the model.

    Why close together: the codes start near the origin, so every component starts with a share of them and
    the components separate as the codes split, as EM does from a symmetric start. Drawn ``N(0, I)`` apart
    (about ``sqrt(2 Z)``), one component took nearly every code and the others starved (synthetic corpus)."""

    def __init__(self, num_components: int, latent_size: int) -> None:
        super().__init__()
        self.means = nn.Parameter(MEAN_INIT_SCALE * torch.randn(num_components, latent_size))
        self.logvars = nn.Parameter(torch.zeros(num_components, latent_size))
        self.logits = nn.Parameter(torch.zeros(num_components))

    def mixture(self) -> Mixture:
        return Mixture(torch.log_softmax(self.logits.float(), dim=0), self.means.float(), self.logvars.float())


class PseudoInputs(nn.Module):
    """VampPrior's learned pseudo-inputs for token sequences: ``K`` pseudo-sentences of ``length`` vectors in
    the encoder's input-embedding space, ``[K, length, E]`` (a sentence is discrete, so the pseudo-input lives
    where the encoder first sees it as continuous). The prior is the uniform mixture of the encoder's
    posteriors of them, so it moves with the encoder."""

    def __init__(self, num_components: int, length: int, embedding_size: int, scale: float = 1.0) -> None:
        super().__init__()
        self.embeddings = nn.Parameter(torch.randn(num_components, length, embedding_size) * scale)

    @property
    def num_components(self) -> int:
        return self.embeddings.shape[0]
