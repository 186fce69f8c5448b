"""Priors and posteriors beyond N(0, I) / diagonal Gaussian: densities that integrate to one, KL estimates
against closed forms or many-sample Monte Carlo, reparameterization gradients, shapes, save/load."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from textvae.config import Config, ModelConfig
from textvae.data.batching import collate
from textvae.errors import ConfigError
from textvae.evaluation.likelihood import iw_nll, mutual_information_from_posteriors
from textvae.model.objective import gaussian_kl
from textvae.model.posteriors import (
    InverseAutoregressiveFlow,
    log_bessel_iv,
    sample_vmf,
    vmf_kl,
    vmf_log_normalizer,
    vmf_mean_cosine,
)
from textvae.model.priors import Mixture, log_sphere_area, mixture_log_prob, mixture_marginal_log_prob
from textvae.model.vae import TextVAE

FAMILIES = [
    ("normal", "gaussian"),
    ("mog", "gaussian"),
    ("vamp", "gaussian"),
    ("normal", "iaf"),
    ("mog", "iaf"),
    ("sphere", "vmf"),
]


def tiny(prior="normal", posterior="gaussian", latent=3, **kw) -> TextVAE:
    cfg = ModelConfig(
        vocab_size=20, embedding_size=8, hidden_size=12, latent_size=latent, prior=prior, posterior=posterior,
        prior_components=4, **kw,
    )  # fmt: skip
    torch.manual_seed(0)
    return TextVAE(cfg).eval()


def perturb(module: torch.nn.Module, scale: float = 0.3, seed: int = 1) -> None:
    """Move parameters away from their initialisation (a new flow is the identity)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale)


BATCH = collate([[5, 6, 7], [8, 9], [10, 11, 12, 13]], 0, 1, 2)


# -- densities ---------------------------------------------------------------------------------------------


def grid_2d(half: float = 9.0, n: int = 361) -> tuple[torch.Tensor, float]:
    x = torch.linspace(-half, half, n, dtype=torch.float64)
    pts = torch.stack(torch.meshgrid(x, x, indexing="ij"), -1).reshape(-1, 2)
    return pts, float((x[1] - x[0]) ** 2)


@pytest.mark.parametrize("prior,posterior", [("mog", "gaussian"), ("vamp", "gaussian"), ("normal", "iaf")])
def test_the_prior_of_codes_integrates_to_one(prior, posterior):
    """Numerically over a 2-D grid: catches a wrong sign of the flow's log-determinant or a bad mixture."""
    m = tiny(prior, posterior, latent=2).double()
    if m.flow is not None:
        perturb(m.flow, 0.1)  # larger moves spread the pulled-back prior beyond any small grid
    pts, cell = grid_2d()
    with torch.no_grad():
        mass = float(m.log_prior(pts).exp().sum() * cell)
    assert mass == pytest.approx(1.0, abs=2e-3)


def test_mixture_marginals_integrate_to_one_and_one_component_is_its_gaussian():
    g = torch.Generator().manual_seed(0)
    mix = Mixture(
        torch.log_softmax(torch.randn(3, generator=g), 0),
        torch.randn(3, 2, generator=g),
        torch.randn(3, 2, generator=g) * 0.3,
    )
    x = torch.linspace(-12, 12, 4001).unsqueeze(1).expand(-1, 2)
    marg = mixture_marginal_log_prob(x, mix).exp().sum(0) * (x[1, 0] - x[0, 0])
    assert torch.allclose(marg, torch.ones(2), atol=1e-3)
    one = Mixture(torch.zeros(1), torch.zeros(1, 2), torch.zeros(1, 2))
    z = torch.randn(5, 2, generator=g)
    assert torch.allclose(mixture_log_prob(z, one), -0.5 * (z.pow(2) + math.log(2 * math.pi)).sum(-1), atol=1e-6)


# -- KL estimates ------------------------------------------------------------------------------------------


def kl_estimates(m: TextVAE, mu, logvar, draws: int = 40000, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Over the same ``draws`` posterior draws per sentence: the mean of ``kl_terms`` (closed-form entropy,
    sampled cross-entropy) and of ``log q(z|x) - log p(z)`` from the model's densities, both ``[B]``."""
    b, zdim = mu.shape
    with torch.no_grad():
        eps = torch.randn((draws, b, zdim), generator=torch.Generator().manual_seed(seed))
        z = m.sample_posterior(mu, logvar, eps)  # [S, B, Z]
        per_dim = m.kl_terms(mu.repeat(draws, 1), logvar.repeat(draws, 1), z.reshape(-1, zdim))
        terms = per_dim.sum(-1).double().view(draws, b).mean(0)
        direct = (m.log_posterior(z, mu, logvar) - m.log_prior(z)).double().mean(0)
    return terms, direct


def test_mixture_of_identical_components_gives_the_gaussian_closed_form():
    """Every component N(m, v): the prior is that Gaussian, whose KL from q is known in closed form."""
    m = tiny("mog")
    with torch.no_grad():
        m.prior_parameters.means.copy_(torch.tensor([0.5, -1.0, 0.2]).expand(4, -1))
        m.prior_parameters.logvars.copy_(torch.tensor([0.3, -0.4, 0.0]).expand(4, -1))
    mu, logvar = torch.tensor([[0.1, 0.4, -0.3], [1.0, 0.0, 0.5]]), torch.tensor([[-0.5, 0.2, 0.0], [-1.0, -0.2, 0.1]])
    pm, pv = m.prior_parameters.means[0], m.prior_parameters.logvars[0]
    exact = 0.5 * (pv - logvar + (logvar.exp() + (mu - pm).pow(2)) / pv.exp() - 1).sum(-1)
    terms, direct = kl_estimates(m, mu, logvar, draws=200000)
    assert torch.allclose(terms.float(), exact, atol=0.02) and torch.allclose(direct.float(), exact, atol=0.03)


@pytest.mark.parametrize("prior,posterior", [("mog", "gaussian"), ("vamp", "gaussian"), ("mog", "iaf")])
def test_estimated_kl_is_the_many_sample_monte_carlo_kl(prior, posterior):
    """``kl_terms`` at one draw, averaged, equals ``E_q[log q - log p]`` computed from the model's densities."""
    m = tiny(prior, posterior)
    if m.flow is not None:
        perturb(m.flow, 0.1)
    mu, logvar = (t.detach() for t in m.encode(BATCH.input_ids, BATCH.lengths))
    terms, direct = kl_estimates(m, mu, logvar)
    # The same draws: the two differ only by log q(z|x) against its mean, -H(q), whose noise is small.
    assert torch.allclose(terms, direct, atol=0.03)
    assert (direct > 0).all()


def test_identity_flow_under_the_normal_prior_matches_the_analytic_kl():
    m = tiny("normal", "iaf")  # a new flow is the identity
    mu, logvar = torch.tensor([[0.3, -1.0, 0.5]]), torch.tensor([[-0.7, 0.1, 0.4]])
    terms, _ = kl_estimates(m, mu, logvar)
    assert float(terms) == pytest.approx(float(gaussian_kl(mu, logvar).sum()), abs=0.02)
    assert not m.analytic_kl and tiny().analytic_kl


def test_bessel_series_matches_closed_forms():
    for x in (0.3, 2.0, 17.0, 150.0):
        half = math.log(math.sqrt(2 / (math.pi * x)) * math.sinh(x))  # I_{1/2}
        assert log_bessel_iv(0.5, x) == pytest.approx(half, rel=1e-9)
        assert log_bessel_iv(0.0, x) == pytest.approx(
            math.log(float(torch.special.i0(torch.tensor(x, dtype=torch.float64)))), rel=1e-9
        )


@pytest.mark.parametrize("dim,kappa", [(3, 5.0), (8, 40.0), (32, 80.0)])
def test_vmf_density_is_normalised_and_its_kl_matches_monte_carlo(dim, kappa):
    # The density of w = mu.z, C exp(kappa w) (1 - w^2)^((d-3)/2) area(S^{d-2}), integrates to one.
    w = torch.linspace(-1, 1, 200001, dtype=torch.float64)[1:-1]
    log_f = (
        vmf_log_normalizer(dim, kappa) + kappa * w + 0.5 * (dim - 3) * torch.log1p(-w * w) + log_sphere_area(dim - 1)
    )
    assert float(torch.trapezoid(log_f.exp(), w)) == pytest.approx(1.0, abs=1e-3)
    mu = torch.nn.functional.normalize(torch.randn(4, dim, generator=torch.Generator().manual_seed(0)), dim=-1)
    eps = torch.randn((4, 20000, dim), generator=torch.Generator().manual_seed(1))
    z = sample_vmf(mu.unsqueeze(1), kappa, eps)
    assert torch.allclose(z.norm(dim=-1), torch.ones(()), atol=1e-5)
    cos = (z * mu.unsqueeze(1)).sum(-1)
    assert float(cos.mean()) == pytest.approx(vmf_mean_cosine(dim, kappa), abs=5e-3)
    mc = float((kappa * cos + vmf_log_normalizer(dim, kappa) + log_sphere_area(dim)).mean())
    assert mc == pytest.approx(vmf_kl(dim, kappa), abs=0.05) and vmf_kl(dim, kappa) > 0
    # The mean of the draws points along mu (the Householder reflection took e_1 there).
    assert torch.allclose(torch.nn.functional.normalize(z.mean(1), dim=-1), mu, atol=0.02)


# -- gradients of the reparameterizations ----------------------------------------------------------------


def test_vmf_draws_are_differentiable_in_the_mean_direction():
    eps = torch.randn(2, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)

    def draw(raw):
        return sample_vmf(raw / raw.norm(dim=-1, keepdim=True), 20.0, eps)

    raw = torch.randn(2, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(draw, (raw,))


def test_gaussian_and_flow_draws_pass_gradcheck():
    flow = InverseAutoregressiveFlow(4, 2, 8).double()
    perturb(flow)
    eps = torch.randn(3, 4, dtype=torch.float64)
    mu = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    logvar = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)

    def draw(mu, logvar):
        y, logdet = flow(mu + eps * (0.5 * logvar).exp())
        return y, logdet

    assert torch.autograd.gradcheck(draw, (mu, logvar))


def test_flow_is_autoregressive_invertible_and_its_logdet_is_exact():
    flow = InverseAutoregressiveFlow(5, 3, 16).double()
    perturb(flow, 0.5)
    z = torch.randn(5, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda v: flow(v)[0], z)
    assert float(flow(z)[1].detach()) == pytest.approx(float(torch.linalg.slogdet(jac)[1]), abs=1e-8)
    one = InverseAutoregressiveFlow(5, 1, 16).double()
    perturb(one, 0.5)
    j1 = torch.autograd.functional.jacobian(lambda v: one(v)[0], z)
    assert torch.equal(j1.triu(1), torch.zeros_like(j1))  # output i depends on z_<=i only
    y = torch.randn(7, 5, dtype=torch.float64)
    assert torch.allclose(flow(flow.inverse(y))[0], y, atol=1e-9)


def test_every_family_trains_end_to_end_with_gradients_everywhere():
    for prior, posterior in FAMILIES:
        m = tiny(prior, posterior, free_bits=0.1).train()
        out = m(BATCH)
        out.loss.backward()
        missing = [n for n, p in m.named_parameters() if p.grad is None]
        assert not missing, (prior, posterior, missing)
        assert out.kl_per_dim.shape == (3,) and torch.isfinite(out.loss)


# -- shapes, sampling, save/load ---------------------------------------------------------------------------


@pytest.mark.parametrize("prior,posterior", FAMILIES)
def test_sampling_shapes_and_save_load(tmp_path, prior, posterior):
    m = tiny(prior, posterior)
    if m.flow is not None:
        perturb(m.flow)
    z = m.sample_prior(6, torch.Generator().manual_seed(0))
    assert z.shape == (6, 3) and torch.isfinite(z).all()
    if posterior == "vmf":
        assert torch.allclose(z.norm(dim=-1), torch.ones(()), atol=1e-5)
    mu, logvar = m.encode(BATCH.input_ids, BATCH.lengths)
    zs = m.sample_posterior(mu.unsqueeze(1), logvar.unsqueeze(1), torch.randn(3, 7, 3))
    assert zs.shape == (3, 7, 3)
    assert len(m.generate(z)) == 6
    m.save_pretrained(tmp_path / "m")
    back = TextVAE.from_pretrained(tmp_path / "m").eval()
    assert (back.config.prior, back.config.posterior) == (prior, posterior)
    a = iw_nll(m, BATCH, 8, generator=torch.Generator().manual_seed(0))
    b = iw_nll(back, BATCH, 8, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b)
    assert torch.equal(
        m.sample_prior(4, torch.Generator().manual_seed(2)), back.sample_prior(4, torch.Generator().manual_seed(2))
    )


@settings(max_examples=15, deadline=None)
@given(k=st.integers(1, 40), seed=st.integers(0, 50))
def test_iw_bound_of_every_family_is_finite_and_k1_is_the_elbo_draw(k, seed):
    for prior, posterior in FAMILIES[::2] + [FAMILIES[3]]:
        m = tiny(prior, posterior)
        nll = iw_nll(m, BATCH, k, generator=torch.Generator().manual_seed(seed))
        assert nll.shape == (3,) and torch.isfinite(nll).all()


def test_vmf_mutual_information_is_zero_when_the_posterior_ignores_x():
    mu = torch.nn.functional.normalize(torch.ones(50, 6), dim=-1)
    mi = mutual_information_from_posteriors(mu, torch.zeros(50, 6), num_samples=3, vmf_kappa=30.0)
    assert mi == pytest.approx(0.0, abs=1e-6)
    spread = torch.nn.functional.normalize(torch.randn(50, 6, generator=torch.Generator().manual_seed(0)), dim=-1)
    assert mutual_information_from_posteriors(spread, torch.zeros(50, 6), num_samples=3, vmf_kappa=30.0) > 1.0


def test_prior_assignments_name_a_component_per_code():
    m = tiny("mog")
    codes = m.prior_parameters.means.detach()[[2, 0, 3]] + 1e-3
    assert m.prior_assignments(codes).tolist() == [2, 0, 3]
    assert tiny().prior_assignments(codes) is None


@pytest.mark.parametrize(
    "overrides,match",
    [
        (["model.posterior=vmf"], "goes with model.prior=sphere"),
        (["model.prior=sphere"], "goes with model.prior=sphere"),
        (["model.prior=vamp", "model.conditional=true", "model.num_labels=2"], "pseudo-inputs for labels"),
        (["model.posterior=vmf", "model.prior=sphere", "model.latent_size=1"], "latent_size >= 2"),
    ],
)
def test_meaningless_combinations_are_refused(overrides, match):
    cfg = Config().apply_overrides(overrides + ["model.vocab_size=20"]).model
    with pytest.raises(ConfigError, match=match):
        TextVAE(cfg)


def test_unknown_family_names_are_refused_with_the_choices():
    with pytest.raises(ConfigError, match="normal, mog, vamp, sphere"):
        Config().apply_overrides(["model.prior=gmm"])
    with pytest.raises(ConfigError, match="gaussian, iaf, vmf"):
        Config().apply_overrides(["model.posterior=flow"])


@pytest.mark.parametrize("prior,posterior", [("mog", "gaussian"), ("vamp", "iaf"), ("normal", "iaf")])
def test_the_per_dimension_split_and_the_loss_parts_both_sum_to_the_kl_estimate(prior, posterior):
    """At every draw the recorded terms add up to -H(q) - log p(z) exactly, and so do the loss's parts (the
    per-coordinate terms free bits clamp plus a mixture's coupling, which they do not)."""
    from textvae.model.priors import LOG_2PI

    m = tiny(prior, posterior)
    perturb(m, 0.1)  # a flow starts as the identity, a mixture's means start together
    mu, logvar = (t.detach() for t in m.encode(BATCH.input_ids, BATCH.lengths))
    z = m.sample_posterior(mu, logvar, torch.randn(mu.shape, generator=torch.Generator().manual_seed(0)))
    with torch.no_grad():
        terms = m.kl_terms(mu, logvar, z)
        parts = m.loss_kl_terms(mu, logvar, z)
        expected = -0.5 * (1 + logvar + LOG_2PI).sum(-1) - m.log_prior(z)
    assert terms.shape == parts.per_dim.shape == mu.shape and parts.coupling.shape == mu.shape[:1]
    assert torch.allclose(terms.sum(-1), expected, atol=1e-4)
    assert torch.allclose(parts.per_dim.sum(-1) + parts.coupling, expected, atol=1e-4)
    assert (float(parts.coupling.abs().max()) > 1e-3) == (prior == "mog")  # vamp shares its coupling


@pytest.mark.parametrize("prior", ["normal", "mog"])
def test_free_bits_hold_the_per_coordinate_part_while_a_mixture_still_pulls_the_codes(prior):
    """With every dimension below its floor, N(0, I)'s KL passes the encoder no gradient; a mixture's
    coupling still does (what draws codes onto its components), and the loss is rec + beta * (Z * floor +
    mean coupling)."""
    floor = 50.0  # far above any dimension's KL here
    m = tiny(prior, "gaussian", free_bits=floor).train()
    if m.prior_parameters is not None:
        perturb(m.prior_parameters, 1.0)  # spread the components apart
    mu, logvar = m.encode(BATCH.input_ids, BATCH.lengths)
    eps = torch.randn(mu.shape, generator=torch.Generator().manual_seed(0))
    z = m.sample_posterior(mu, logvar, eps)
    parts = m.loss_kl_terms(mu, logvar, z)
    from textvae.model.objective import kl_term

    assert float(parts.per_dim.detach().mean(0).max()) < floor
    kl_loss = kl_term(parts.per_dim, floor) + parts.coupling.mean()
    grad = torch.autograd.grad(kl_loss, mu)[0]
    assert (float(grad.abs().sum()) > 0) == (prior == "mog")
    out = m(BATCH, eps=eps)
    expected = out.rec + 3 * floor + parts.coupling.mean().detach()
    assert torch.allclose(out.loss, expected, rtol=0, atol=1e-4)


def test_a_new_mixture_prior_gives_every_component_a_share_of_codes_near_the_origin():
    """Its components start together, so none starts starved of codes (spread N(0, I) apart, one took them all
    on the synthetic corpus)."""
    from textvae.model.priors import mixture_responsibilities

    m = tiny("mog", "gaussian", latent=16)
    codes = 0.3 * torch.randn(512, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        share = mixture_responsibilities(codes, m.prior_mixture()).mean(0)
    assert float(share.min()) > 0.5 / m.config.prior_components


def prior_grads(m: TextVAE, loss: torch.Tensor) -> dict[str, torch.Tensor]:
    learned = [(n, p) for n, p in m.named_parameters() if n.startswith(("prior_parameters.", "pseudo_inputs."))]
    grads = torch.autograd.grad(loss, [p for _, p in learned], allow_unused=True)
    return {n: g if g is not None else torch.zeros_like(p) for (n, p), g in zip(learned, grads)}


@pytest.mark.parametrize("prior,posterior", [("mog", "gaussian"), ("mog", "iaf"), ("vamp", "gaussian")])
def test_a_learned_prior_keeps_fitting_the_codes_when_free_bits_hold_every_dimension_at_the_floor(prior, posterior):
    """With the KL below the floor everywhere the clamp passes no gradient, yet the prior must still follow
    the codes; the loss's value is unchanged by its fit."""
    m = tiny(prior, posterior, free_bits=1e6).train()
    out = m(BATCH, generator=torch.Generator().manual_seed(0))
    grads = prior_grads(m, out.loss)
    assert grads and all(float(g.abs().sum()) > 0 for g in grads.values())
    assert torch.allclose(out.loss, out.rec + 3 * 1e6)  # the fit adds a gradient, never a value


@pytest.mark.parametrize("prior", ["mog", "vamp"])
def test_without_free_bits_at_beta_one_the_prior_gets_the_gradient_of_the_kl(prior):
    """The fit replaces the KL's gradient on the prior; with the plain objective the two are the same."""
    m = tiny(prior, "gaussian").train()
    mu, logvar = m.encode(BATCH.input_ids, BATCH.lengths)
    z = m.sample_posterior(mu, logvar, torch.randn(mu.shape, generator=torch.Generator().manual_seed(3)))
    parts = m.loss_kl_terms(mu, logvar, z)
    fit = parts.prior_fit
    new = prior_grads(m, parts.per_dim.sum(-1).mean() + parts.coupling.mean() + fit)
    old = prior_grads(m, m.kl_terms(mu, logvar, z).sum(-1).mean())
    assert float(fit.detach()) == 0.0
    for name in new:
        assert torch.allclose(new[name], old[name], atol=1e-6), name
