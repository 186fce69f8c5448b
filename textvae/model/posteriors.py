"""Posterior families beyond the diagonal Gaussian: an inverse autoregressive flow and von Mises-Fisher.

**IAF** (Kingma et al. 2016): ``y = T(z)`` with ``z ~ N(mu(x), diag(sigma(x)^2))`` and ``T`` a few affine
autoregressive steps ``y_i = m_i(z_<i) + exp(s_i(z_<i)) z_i`` (a masked network gives all ``m, s`` in one
pass), the coordinate order reversed between steps. ``log q(y|x) = log N(z; mu, sigma) - log|det dT/dz|``
with ``log|det| = sum_i s_i``, exact. The last layer starts at zero, so a new flow is the identity.

**von Mises-Fisher** on ``S^{d-1}`` with mean direction ``mu`` and fixed concentration ``kappa``: density
``C_d(kappa) exp(kappa mu.z)``. Its KL from the uniform prior depends on ``kappa`` and ``d`` only, so the
posterior cannot collapse onto the prior (Xu & Durrett 2018). A draw is ``w`` (the cosine to ``mu``, whose
law depends on ``kappa, d`` only) and a uniform tangent direction, reflected onto ``mu`` (Householder); the
gradient reaches ``mu`` through the reflection, and ``w`` needs none since ``kappa`` is fixed.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
from torch import Tensor, nn

from textvae.model.priors import log_sphere_area

# -- inverse autoregressive flow -------------------------------------------------------------------------


class MaskedNetwork(nn.Module):
    """MADE (Germain et al. 2015) with one hidden layer: ``z [..., Z] -> (m, s) [..., Z]`` where output ``i``
    depends on ``z_<i`` only (so output 0 is a learned constant)."""

    def __init__(self, size: int, hidden: int) -> None:
        super().__init__()
        degrees_in = torch.arange(1, size + 1)
        degrees_hidden = torch.arange(hidden) % max(size - 1, 1) + 1
        self.register_buffer("mask_in", (degrees_hidden[:, None] >= degrees_in[None, :]).float(), persistent=False)
        self.register_buffer("mask_out", (degrees_in[:, None] > degrees_hidden[None, :]).float(), persistent=False)
        self.hidden = nn.Linear(size, hidden)
        self.out_m = nn.Linear(hidden, size)
        self.out_s = nn.Linear(hidden, size)
        for layer in (self.out_m, self.out_s):  # identity at initialisation: m = 0, s = 0
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        h = torch.nn.functional.elu(nn.functional.linear(z, self.hidden.weight * self.mask_in, self.hidden.bias))
        m = nn.functional.linear(h, self.out_m.weight * self.mask_out, self.out_m.bias)
        s = nn.functional.linear(h, self.out_s.weight * self.mask_out, self.out_s.bias)
        # A bounded log-scale keeps exp(s) and its inverse finite however far training pushes the network.
        return m, 4.0 * torch.tanh(s / 4.0)


class BatchNormedMeans(nn.Module):
    """BN-VAE (Zhu et al. 2020): the Gaussian posterior's means ``[B, Z]`` batch-normalised per dimension,
    then scaled by a **fixed** ``gamma`` and shifted by a learned ``shift``.

    In training the batch mean of ``mu_i^2`` is then ``gamma^2 + shift_i^2`` (times ``v / (v + EPS)`` for a
    dimension whose raw means have batch variance ``v``; ``EPS`` is smaller than BatchNorm's usual 1e-5
    because an untrained posterior head's means vary by about that little), and
    since the variance part of the Gaussian KL is never negative, every dimension's batch-average KL to
    N(0, I) is at least ``gamma^2 / 2`` nats: a floor on the rate without free bits' clamp, and with a
    gradient everywhere. Evaluation uses the running statistics (a batch of one sentence in training too).
    """

    EPS = 1e-6

    def __init__(self, size: int, gamma: float) -> None:
        super().__init__()
        self.gamma = gamma
        self.shift = nn.Parameter(torch.zeros(size))
        self.register_buffer("running_mean", torch.zeros(size))
        self.register_buffer("running_var", torch.ones(size))

    def forward(self, mu: Tensor) -> Tensor:
        batch_stats = self.training and mu.shape[0] > 1  # one sentence has no batch variance
        normed = nn.functional.batch_norm(
            mu.float(), self.running_mean, self.running_var, training=batch_stats, momentum=0.1, eps=self.EPS
        )
        return self.gamma * normed + self.shift


class InverseAutoregressiveFlow(nn.Module):
    """``steps`` affine autoregressive steps on ``[..., Z]``. :meth:`forward` (the posterior's direction) is
    one network pass per step; :meth:`inverse` (needed only to draw the prior in the flow's input
    coordinates) is sequential, ``Z`` passes per step."""

    def __init__(self, size: int, steps: int, hidden: int) -> None:
        super().__init__()
        self.steps = nn.ModuleList(MaskedNetwork(size, hidden) for _ in range(steps))

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """``z [..., Z] -> (y [..., Z], log|det dy/dz| [...])``."""
        logdet = z.new_zeros(z.shape[:-1])
        for i, step in enumerate(self.steps):
            if i:
                z = z.flip(-1)
            m, s = step(z)
            z = m + s.exp() * z
            logdet = logdet + s.sum(-1)
        return z, logdet

    @torch.no_grad()
    def inverse(self, y: Tensor) -> Tensor:
        """``T^{-1}``: ``y [..., Z] -> z [..., Z]``, solving each step one coordinate at a time."""
        for i in reversed(range(len(self.steps))):
            z = torch.zeros_like(y)
            for d in range(y.shape[-1]):  # output d depends on z_<d, already solved
                m, s = self.steps[i](z)
                z[..., d] = (y[..., d] - m[..., d]) * (-s[..., d]).exp()
            y = z.flip(-1) if i else z
        return y


# -- von Mises-Fisher --------------------------------------------------------------------------------------


def log_bessel_iv(order: float, x: float) -> float:
    """``log I_order(x)`` (modified Bessel function of the first kind) from its power series, in float64:
    ``I_v(x) = sum_m (x/2)^{2m+v} / (m! Gamma(m+v+1))``, summed in log space until the terms are negligible."""
    if x <= 0:
        raise ValueError("x must be > 0")
    half = math.log(x / 2.0)
    terms, m, peak = [], 0, -math.inf
    while True:
        t = (2 * m + order) * half - math.lgamma(m + 1) - math.lgamma(m + order + 1)
        terms.append(t)
        peak = max(peak, t)
        if m > x and t < peak - 60.0:  # past the peak (m ~ x/2) and 1e-26 below it
            break
        m += 1
    return peak + math.log(sum(math.exp(t - peak) for t in terms))


def vmf_log_normalizer(dim: int, kappa: float) -> float:
    """``log C_d(kappa) = (d/2 - 1) log kappa - (d/2) log 2pi - log I_{d/2-1}(kappa)``."""
    return (0.5 * dim - 1) * math.log(kappa) - 0.5 * dim * math.log(2 * math.pi) - log_bessel_iv(0.5 * dim - 1, kappa)


def vmf_mean_cosine(dim: int, kappa: float) -> float:
    """``E[mu . z] = I_{d/2}(kappa) / I_{d/2-1}(kappa)``."""
    return math.exp(log_bessel_iv(0.5 * dim, kappa) - log_bessel_iv(0.5 * dim - 1, kappa))


def vmf_kl(dim: int, kappa: float) -> float:
    """``KL(vMF(mu, kappa) || Uniform(S^{d-1}))`` in nats, the same for every ``mu``:
    ``kappa E[mu.z] + log C_d(kappa) + log area(S^{d-1})``."""
    return kappa * vmf_mean_cosine(dim, kappa) + vmf_log_normalizer(dim, kappa) + log_sphere_area(dim)


def vmf_log_prob(z: Tensor, mu: Tensor, kappa: float) -> Tensor:
    """``log vMF(z; mu, kappa)`` for unit ``z, mu`` broadcasting over ``[..., Z]``: ``[...]``."""
    return kappa * (z * mu).sum(-1) + vmf_log_normalizer(z.shape[-1], kappa)


@lru_cache(maxsize=16)
def _cosine_table(dim: int, kappa: float, points: int = 1 << 16) -> tuple[Tensor, Tensor]:
    """The inverse CDF of ``w = mu.z`` on a grid: its density is ``prop. to exp(kappa w) (1 - w^2)^{(d-3)/2}``
    on ``[-1, 1]``. Returns ``(cdf [P], w [P])`` in float64 for interpolation."""
    w = torch.linspace(-1.0, 1.0, points, dtype=torch.float64)
    inner = (1.0 - w.pow(2)).clamp_min(1e-300)
    log_f = kappa * w + 0.5 * (dim - 3) * inner.log()
    if dim < 3:  # (1 - w^2)^(-1/2) is infinite at the ends: the grid's end points get the neighbours' value
        log_f[0], log_f[-1] = log_f[1], log_f[-2]
    f = (log_f - log_f.max()).exp()
    cdf = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum(0.5 * (f[1:] + f[:-1]), 0)])
    return cdf / cdf[-1], w


def vmf_cosines(u: Tensor, dim: int, kappa: float, dtype: torch.dtype = torch.float32) -> Tensor:
    """``w = mu.z`` under ``vMF(mu, kappa)`` on ``S^{dim-1}`` for uniform numbers ``u`` (any shape), by inverting
    the tabulated CDF (the grid's error is ~1e-5). Deterministic in ``u``, so seeded draws reproduce."""
    cdf, w = _cosine_table(dim, float(kappa))
    flat = u.detach().to("cpu", torch.float64).clamp(1e-12, 1 - 1e-12)
    idx = torch.searchsorted(cdf, flat).clamp(1, len(cdf) - 1)
    lo, hi = cdf[idx - 1], cdf[idx]
    frac = (flat - lo) / (hi - lo).clamp_min(1e-300)
    return (w[idx - 1] + frac * (w[idx] - w[idx - 1])).to(device=u.device, dtype=dtype)


def sample_vmf(mu: Tensor, kappa: float, eps: Tensor) -> Tensor:
    """Reparameterized draws from ``vMF(mu, kappa)``, from standard normal noise as every posterior here is:
    ``mu [..., Z]`` (unit rows, broadcasting against ``eps [..., Z]``) -> ``[..., Z]``. ``eps_0`` gives the
    cosine (through the normal CDF), ``eps_1..`` the tangent direction. Differentiable in ``mu``."""
    d = eps.shape[-1]
    u = 0.5 * (1.0 + torch.erf(eps[..., :1].double() / math.sqrt(2.0)))
    w = vmf_cosines(u, d, kappa, eps.dtype)  # [..., 1]
    v = eps[..., 1:]
    v = v / v.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    x = torch.cat([w, (1.0 - w.pow(2)).clamp_min(0.0).sqrt() * v], dim=-1)  # around e_1
    # Householder reflection taking e_1 to mu: H = I - 2 u u^T with u = (e_1 - mu) / |e_1 - mu| (mu = e_1: H = I).
    e1 = torch.zeros(d, device=mu.device, dtype=mu.dtype)
    e1[0] = 1.0
    r = e1 - mu
    r = r / r.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return x - 2.0 * (x * r).sum(-1, keepdim=True) * r
