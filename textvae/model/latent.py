"""The latent family of a :class:`~textvae.model.vae.TextVAE`: its prior, its posterior, and the verbs between.

Two coordinate systems, the same for every tool that works with codes:

- **codes** ``z`` are what :meth:`encode` describes (``Posterior(mu, logvar)``), what the posterior samples,
  what ``encode --npy`` writes and what interpolation, attribute vectors and maps move around in;
- the decoder reads ``decoder_space(z)``: for ``posterior=iaf`` the flow's output ``T(z)``, for ``vmf`` the code
  projected onto the unit sphere (so arithmetic on codes stays on it), otherwise ``z`` itself.

The prior lives in the decoder's space; :meth:`log_prior` pulls it back to codes (adding the flow's
``log|det|``) and :meth:`sample_prior` draws it in codes (``T^{-1}`` of a prior draw), so KL, the importance
weights and sampling all agree. For ``iaf`` this is exactly the flow posterior ``q(y|x) = T#N(mu, sigma)``
against ``p(y)``: a KL is unchanged by mapping both distributions through one bijection.

KL is closed-form for the Gaussian posterior under the standard normal prior and for vMF under the uniform
prior (a constant); otherwise it is a one-sample Monte Carlo estimate with the Gaussian's entropy in closed
form (``E_q[log q]`` exactly, ``E_q[log p]`` from the draw), which keeps its variance low.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, NamedTuple

import torch
from torch import Tensor

from textvae.errors import ConfigError
from textvae.model.objective import gaussian_kl
from textvae.model.posteriors import (
    BatchNormedMeans,
    InverseAutoregressiveFlow,
    sample_vmf,
    vmf_kl,
    vmf_log_prob,
)
from textvae.model.priors import (
    LOG_2PI,
    Mixture,
    MixtureParameters,
    PseudoInputs,
    mixture_log_prob,
    mixture_marginal_log_prob,
    mixture_responsibilities,
    normal_log_prob,
    sample_mixture,
    sample_sphere,
    sphere_log_prob,
)

if TYPE_CHECKING:
    from textvae.config import ModelConfig


class LossKL(NamedTuple):
    """The KL as the training loss takes it (:meth:`LatentMixin.loss_kl_terms`), nats: ``per_dim [B, Z]``
    (free bits clamp their batch means), ``coupling [B]`` (the learned mixture's joint density against its
    marginals; zeros for the other priors; never clamped) and ``prior_fit`` (a scalar, 0 in value: see there).
    ``per_dim.sum(-1) + coupling`` is the KL estimate of each sentence."""

    per_dim: Tensor
    coupling: Tensor
    prior_fit: Tensor

    def shared(self) -> Tensor:
        """The KL split over dimensions with the coupling shared evenly, ``[B, Z]`` (what records show)."""
        return share_coupling(self.per_dim, self.coupling)


def share_coupling(per_dim: Tensor, coupling: Tensor) -> Tensor:
    """``per_dim [B, Z]`` plus an equal share of ``coupling [B]`` on each dimension -> ``[B, Z]``, summing to
    the same total per sentence."""
    return per_dim + (coupling / per_dim.shape[-1]).unsqueeze(-1)


def check_latent_config(c: ModelConfig) -> None:
    """Refuse prior/posterior combinations that have no meaning, with the setting to change."""
    if (c.posterior == "vmf") != (c.prior == "sphere"):
        raise ConfigError(
            "model.posterior=vmf lives on the unit sphere and goes with model.prior=sphere (uniform on it), and "
            f"only with it; got posterior={c.posterior}, prior={c.prior}"
        )
    if c.posterior == "vmf" and c.latent_size < 2:
        raise ConfigError("model.posterior=vmf needs model.latent_size >= 2 (a sphere of dimension 1 or more)")
    if c.target_rate > 0 and c.free_bits > 0:
        raise ConfigError(
            f"model.target_rate={c.target_rate} sets the free bits itself; drop model.free_bits={c.free_bits} "
            "(or set model.target_rate=0 to keep a floor per dimension)"
        )
    if c.bn_gamma > 0 and (c.posterior, c.prior) != ("gaussian", "normal"):
        raise ConfigError(
            "model.bn_gamma (BN-VAE) bounds the KL of a Gaussian posterior to the standard normal prior: it needs "
            f"model.posterior=gaussian and model.prior=normal; got posterior={c.posterior}, prior={c.prior}"
        )
    if c.prior == "vamp" and c.conditional:
        raise ConfigError(
            "model.prior=vamp has no pseudo-inputs for labels: use model.prior=mog with a conditional model"
        )


class LatentMixin:
    """Prior and posterior verbs of :class:`~textvae.model.vae.TextVAE` (which sets ``config``, ``encoder`` and
    ``to_posterior`` before calling :meth:`_build_latent`)."""

    def _build_latent(self) -> None:
        c = self.config
        check_latent_config(c)
        self.prior_parameters = None
        self.pseudo_inputs = None
        self.flow = None
        self.mean_norm = None
        if not self.has_latent:
            return
        if c.bn_gamma > 0:
            self.mean_norm = BatchNormedMeans(c.latent_size, c.bn_gamma)
        if c.prior == "mog":
            self.prior_parameters = MixtureParameters(c.prior_components, c.latent_size)
        elif c.prior == "vamp":
            emb = self.encoder.input_embeddings()
            if emb is None:
                raise ConfigError(f"model.prior=vamp needs an encoder that reads embeddings; {c.encoder} does not")
            scale = float(emb.weight.detach().float().std())
            self.pseudo_inputs = PseudoInputs(c.prior_components, c.vamp_length, emb.embedding_dim, scale)
        if c.posterior == "iaf":
            hidden = c.flow_hidden_size or 4 * c.latent_size
            self.flow = InverseAutoregressiveFlow(c.latent_size, c.flow_steps, hidden)

    @property
    def free_bits_floor(self) -> float:
        """The free-bits floor the loss clamps at, nats: ``model.free_bits``, or the one ``model.target_rate``
        sets (per dimension: the rate over ``latent_size``; per vector: the rate itself)."""
        c = self.config
        if c.target_rate > 0:
            return c.target_rate / c.latent_size if c.free_bits_mode == "dim" else c.target_rate
        return c.free_bits

    # -- the prior ---------------------------------------------------------------------------------------
    @property
    def analytic_kl(self) -> bool:
        """True when :meth:`kl_terms` is exact rather than a Monte Carlo estimate."""
        c = self.config
        return (c.prior == "normal" and c.posterior == "gaussian") or c.posterior == "vmf"

    def prior_mixture(self) -> Mixture | None:
        """The prior as a mixture of diagonal Gaussians in the decoder's space (``mog``: its learned parameters;
        ``vamp``: the encoder's posteriors of the pseudo-inputs, uniform weights), or None for the others."""
        if self.prior_parameters is not None:
            return self.prior_parameters.mixture()
        if self.pseudo_inputs is None:
            return None
        pseudo = self.pseudo_inputs.embeddings
        lengths = torch.full((pseudo.shape[0],), pseudo.shape[1], dtype=torch.long, device=pseudo.device)
        mu, logvar = self.to_posterior(self.encoder.forward_embeddings(pseudo, lengths)).float().chunk(2, dim=-1)
        k = pseudo.shape[0]
        return Mixture(torch.full((k,), -math.log(k), device=mu.device), mu, logvar)

    def decoder_space(self, z: Tensor) -> Tensor:
        """Codes ``[..., Z]`` -> what the decoder reads ``[..., Z]`` (see the module docstring)."""
        if self.flow is not None:
            return self.flow(z)[0]
        if self.config.posterior == "vmf":
            return z / z.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return z

    def _prior_log_prob(self, y: Tensor, mixture: Mixture | None) -> Tensor:
        """``log p(y)`` in the decoder's space: ``[..., Z] -> [...]``."""
        if mixture is not None:
            return mixture_log_prob(y, mixture)
        if self.config.prior == "sphere":
            return sphere_log_prob(y)
        return normal_log_prob(y)

    def log_prior(self, z: Tensor) -> Tensor:
        """``log p(z)`` of codes ``[..., Z] -> [...]`` nats: the prior of ``decoder_space(z)`` plus, with a flow,
        its ``log|det|`` (the prior pulled back to codes, so it matches :meth:`log_posterior`)."""
        mixture = self.prior_mixture()
        if self.flow is None:
            return self._prior_log_prob(z, mixture)
        y, logdet = self.flow(z)
        return self._prior_log_prob(y, mixture) + logdet

    def sample_prior(
        self, n: int, generator: torch.Generator | None = None, *, in_decoder_space: bool = False
    ) -> Tensor:
        """``n`` codes drawn from the prior: ``[n, Z]`` (for a flow, ``T^{-1}`` of draws in the decoder's space;
        ``in_decoder_space=True`` returns the draws themselves)."""
        c, dev = self.config, self.device
        with torch.no_grad():
            mixture = self.prior_mixture()
        if mixture is not None:
            y = sample_mixture(mixture, n, generator)
        elif c.prior == "sphere":
            y = sample_sphere(n, c.latent_size, generator, dev)
        else:
            y = torch.randn((n, c.latent_size), generator=generator, device=dev)
        return self.flow.inverse(y) if self.flow is not None and not in_decoder_space else y

    def prior_assignments(self, mu: Tensor) -> Tensor | None:
        """For a mixture prior, the most responsible component of each code ``mu [N, Z]``: ``[N]`` long (a
        cluster per sentence); None for a prior with one component."""
        with torch.no_grad():
            mixture = self.prior_mixture()
            if mixture is None:
                return None
            y = self.decoder_space(mu.to(self.device))
            return torch.cat([mixture_responsibilities(c, mixture).argmax(-1) for c in y.split(4096)]).cpu()

    # -- the posterior -----------------------------------------------------------------------------------
    def posterior_from_head(self, mu: Tensor, logvar: Tensor) -> tuple[Tensor, Tensor]:
        """The posterior head's raw output -> the family's parameters. vMF: the mean direction (``mu``
        normalised) and ``logvar`` filled with ``-log kappa`` (its fixed concentration); with ``model.bn_gamma``
        the Gaussian's means batch-normalised (:class:`BatchNormedMeans`)."""
        if self.mean_norm is not None:
            return self.mean_norm(mu), logvar
        if self.config.posterior != "vmf":
            return mu, logvar
        direction = mu / mu.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return direction, torch.full_like(logvar, -math.log(self.config.vmf_kappa))

    def sample_posterior(self, mu: Tensor, logvar: Tensor, eps: Tensor) -> Tensor:
        """Reparameterized codes from standard normal noise ``eps`` (``[B, Z]``, or ``[B, K, Z]`` with ``mu,
        logvar [B, 1, Z]``): Gaussian ``mu + sigma * eps``; vMF through :func:`sample_vmf`. Differentiable."""
        if self.config.posterior == "vmf":
            return sample_vmf(mu, self.config.vmf_kappa, eps.to(mu.dtype))
        return mu + eps.to(mu.dtype) * (0.5 * logvar).exp()

    def log_posterior(self, z: Tensor, mu: Tensor, logvar: Tensor, eps: Tensor | None = None) -> Tensor:
        """``log q(z|x)`` of codes ``[..., Z] -> [...]``. Pass the ``eps`` that drew ``z`` when known: the
        Gaussian's ``(z - mu) / sigma`` is then exactly ``eps`` rather than a division by a tiny sigma."""
        if self.config.posterior == "vmf":
            return vmf_log_prob(z, mu, self.config.vmf_kappa)
        e2 = eps.pow(2) if eps is not None else (z - mu).pow(2) * (-logvar).exp()
        return -0.5 * (e2 + logvar + LOG_2PI).sum(-1)

    def closed_form_kl(self, mu: Tensor, logvar: Tensor) -> Tensor | None:
        """``KL(q(z|x) || p(z))`` per sentence ``[B]`` nats when the family has a closed form
        (:attr:`analytic_kl`), else None (estimate it from draws: :meth:`kl_terms`)."""
        if not self.analytic_kl:
            return None
        return self.kl_terms(mu, logvar, mu).sum(-1)  # the draw is not used by the closed forms

    def kl_terms(self, mu: Tensor, logvar: Tensor, z: Tensor) -> Tensor:
        """``KL(q(z|x) || p(z))`` of each sentence split over dimensions, ``[B, Z]`` nats, summing to the KL.

        Exact for ``normal``/``gaussian`` and for vMF (a constant, shared evenly). Otherwise estimated at the
        draw ``z [B, Z]``: each coordinate's closed-form negative entropy minus its log density under the
        prior's marginal, plus an equal share of what couples the coordinates (a mixture's joint density
        against its marginals, a flow's ``-log|det|``), so that the split sums to the KL. This is the split the
        records show (``kl_per_dim``); the loss clamps a flow's share with its coordinates but keeps the
        learned mixture's coupling outside the clamp (:meth:`loss_kl_terms`)."""
        per_dim, coupling = self._kl_parts(mu, logvar, z, self.prior_mixture())
        return share_coupling(per_dim, coupling)

    def loss_kl_terms(self, mu: Tensor, logvar: Tensor, z: Tensor) -> LossKL:
        """What the training loss takes (:class:`LossKL`): the KL split into per-coordinate terms ``[B, Z]``,
        which free bits clamp, and the ``mog`` prior's coupling ``[B]``, which they do not, both with a learned
        prior's parameters held fixed; and that prior's own fit, a scalar whose value is 0 and whose gradient
        is that of ``-mean_b log p(z_b)`` (codes held fixed) with respect to the prior alone.

        Why the fit is apart: free bits clamp a dimension's KL at its floor, so a prior learned through the KL
        gets no gradient wherever the encoder sits at the floor (most of training), and beta scales it to zero
        at the start of annealing. The fit has the KL's optimum over the prior's parameters (the posterior's
        entropy does not depend on them), and with beta = 1 and no free bits the gradients are the same.

        Why the coupling is outside the clamp: it is the part of the KL that only a mixture has, the joint
        density against the product of its marginals, and it is what draws the codes of similar sentences
        onto one component. Clamped with the rest, it passes no gradient while the dimensions sit at their
        floor, and the mixture then only describes codes laid out as under N(0, I) (measured on the synthetic
        corpus: README, "Priors, posteriors and the compression view")."""
        mixture = self.prior_mixture()
        if mixture is None:  # nothing learned in the prior
            per_dim, coupling = self._kl_parts(mu, logvar, z, None)
            return LossKL(per_dim, coupling, mu.new_zeros(()))
        held = Mixture(*(t.detach() for t in mixture))
        # The prior's parameters enter only through its density in the decoder's space.
        nll = -mixture_log_prob(self.decoder_space(z).detach(), mixture).mean()
        per_dim, coupling = self._kl_parts(mu, logvar, z, held)
        if self.prior_parameters is None:
            # VampPrior: its components are the encoder's own posteriors, so an unclamped coupling pulled the
            # codes onto the pseudo-inputs' (synthetic corpus, free bits 2: validation reconstruction 20.1 nats
            # against 11.8 shared). Its coupling stays shared among the clamped terms.
            per_dim = share_coupling(per_dim, coupling)
            coupling = torch.zeros_like(coupling)
        return LossKL(per_dim, coupling, nll - nll.detach())

    def _kl_parts(self, mu: Tensor, logvar: Tensor, z: Tensor, mixture: Mixture | None) -> tuple[Tensor, Tensor]:
        """The KL at the draw ``z`` as per-coordinate terms ``[B, Z]`` (a flow's ``-log|det|`` shared evenly
        among them) and a mixture's coupling ``[B]`` (zeros for the other priors); together they sum to it."""
        c = self.config
        no_coupling = mu.new_zeros(mu.shape[0])
        if c.posterior == "vmf":
            return torch.full_like(mu, vmf_kl(c.latent_size, c.vmf_kappa) / c.latent_size), no_coupling
        if self.analytic_kl:
            return gaussian_kl(mu, logvar), no_coupling
        y, logdet = self.flow(z) if self.flow is not None else (z, z.new_zeros(z.shape[0]))
        if mixture is None:
            marginal, coupling = -0.5 * (y.pow(2) + LOG_2PI), no_coupling
        else:
            marginal = mixture_marginal_log_prob(y, mixture)
            coupling = marginal.sum(-1) - mixture_log_prob(y, mixture)
        per_dim = -0.5 * (1.0 + logvar + LOG_2PI) - marginal - (logdet / c.latent_size).unsqueeze(-1)
        return per_dim, coupling
