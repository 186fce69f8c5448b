import math

import pytest
import torch
import torch.nn.functional as F

from textvae.config import ModelConfig
from textvae.data.batching import collate
from textvae.evaluation.batches import collect_posteriors
from textvae.evaluation.likelihood import (
    evaluate_corpus,
    exact_nll,
    iw_nll,
    log_likelihood_given_z,
    mutual_information,
    mutual_information_from_posteriors,
)
from textvae.evaluation.metrics import active_units, elbo_stats
from textvae.evaluation.text_metrics import corpus_bleu, distinct_n, self_bleu
from textvae.model.vae import Posterior, TextVAE

V = 30


def tiny(**kw) -> ModelConfig:
    base = dict(vocab_size=V, embedding_size=8, hidden_size=12, latent_size=4)
    base.update(kw)
    return ModelConfig(**base)


def sentences(n: int, seed: int = 0, max_len: int = 9) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    return [
        torch.randint(4, V, (int(torch.randint(1, max_len, (1,), generator=g)),), generator=g).tolist()
        for _ in range(n)
    ]


def batch(n: int = 6, seed: int = 0):
    return collate(sentences(n, seed), 0, 1, 2)


def vae(seed: int = 0, sharpen: bool = False) -> TextVAE:
    """A tiny VAE; ``sharpen`` scales weights so q(z|x) is far from the prior and the decoder uses z,
    which opens a visible gap between the ELBO and the IW bound."""
    torch.manual_seed(seed)
    m = TextVAE(tiny()).eval()
    if sharpen:
        with torch.no_grad():
            m.to_posterior.weight.mul_(6)
            m.decoder.z_to_state.weight.mul_(8)
            m.decoder.rnn.weight_ih_l0.mul_(3)
    return m


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# -- importance-weighted NLL ----------------------------------------------------------------------------
def test_iw_with_one_sample_is_the_single_sample_negative_elbo():
    m, b = vae(sharpen=True), batch(8)
    out = m(b, generator=gen(3))
    # Independent computation of rec + log q(z|x) - log p(z) at forward's own z.
    log_q = torch.distributions.Normal(out.mu, (0.5 * out.logvar).exp()).log_prob(out.z).sum(-1)
    log_p = torch.distributions.Normal(0.0, 1.0).log_prob(out.z).sum(-1)
    expected = out.rec_per_sentence + log_q - log_p
    torch.testing.assert_close(iw_nll(m, b, 1, generator=gen(3)), expected, rtol=1e-5, atol=1e-4)
    # And log p(x|z) given that z reproduces forward's reconstruction term.
    torch.testing.assert_close(-log_likelihood_given_z(m, b, out.z), out.rec_per_sentence, rtol=1e-5, atol=1e-5)


def test_iw_bound_below_elbo_and_tightens_with_k():
    m, b = vae(sharpen=True), batch(64, seed=1)
    out = m(b, sample=False)
    z = out.mu.unsqueeze(1) + torch.randn(64, 30, 4, generator=gen(0)) * (0.5 * out.logvar).exp().unsqueeze(1)
    rec = -log_likelihood_given_z(m, b, z).mean(1)  # 30-sample estimate of E_q[-log p(x|z)]
    neg_elbo = (rec + out.kl_per_sentence).mean().item()
    iw = {k: iw_nll(m, b, k, generator=gen(7)).mean().item() for k in (1, 10, 100)}
    assert iw[1] == pytest.approx(neg_elbo, abs=0.3)  # unbiased single-sample estimate
    assert iw[10] <= iw[1] + 0.05 and iw[100] <= iw[10] + 0.05
    assert iw[100] < neg_elbo - 0.3  # the gap is real here (KL is large), not noise


def test_chunking_does_not_change_iw_estimate():
    m, b = vae(sharpen=True), batch(5)
    small = iw_nll(m, b, 8, chunk_size=3, generator=gen(5))  # chunks split sentences' sample runs
    large = iw_nll(m, b, 8, chunk_size=100_000, generator=gen(5))
    whole = iw_nll(m, b, 8, chunk_size=None, generator=gen(5))
    torch.testing.assert_close(small, large, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(whole, large, rtol=1e-5, atol=1e-5)


def test_log_likelihood_given_z_shapes():
    m, b = vae(), batch(5)
    assert log_likelihood_given_z(m, b, torch.randn(5, 4)).shape == (5,)
    z = torch.randn(5, 3, 4)
    ll = log_likelihood_given_z(m, b, z, chunk_size=2)
    assert ll.shape == (5, 3) and bool((ll < 0).all())
    torch.testing.assert_close(ll[:, 1], log_likelihood_given_z(m, b, z[:, 1]))


# -- language model ----------------------------------------------------------------------------------
def test_lm_exact_nll_matches_a_token_by_token_computation():
    torch.manual_seed(0)
    lm = TextVAE(tiny(use_latent=False)).eval()
    b = batch(5)
    manual = []
    for i in range(5):
        ids = b.input_ids[i, : b.lengths[i]].unsqueeze(0)
        hidden, _ = lm.decoder(ids[:, :-1], None)
        logp = F.log_softmax(lm.decoder.project(hidden)[0], dim=-1)
        manual.append(-logp.gather(1, ids[0, 1:].unsqueeze(1)).sum())
    nll = exact_nll(lm, b)
    torch.testing.assert_close(nll, torch.stack(manual), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(iw_nll(lm, b, 5), nll)
    with pytest.raises(ValueError):
        exact_nll(vae(), b)


# -- active units, mutual information --------------------------------------------------------------------
def test_active_units_counts_constructed_case():
    torch.manual_seed(0)
    mu = torch.randn(200, 5) * torch.tensor([1.0, 0.5, 0.3, 0.05, 0.01])  # variances 1, .25, .09, .0025, 1e-4
    assert active_units(mu, 0.01) == 3
    assert active_units(mu[:1]) == 0


class FixedPosterior:
    """Replaces ``model.encode``: ``fn(input_ids, lengths) -> (mu, logvar)``."""

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, input_ids, lengths, labels=None):
        return Posterior(*self.fn(input_ids, lengths))


def test_mi_is_zero_when_posterior_ignores_x(monkeypatch):
    m = vae()
    const_mu, const_lv = torch.tensor([0.3, -1.0, 2.0, 0.0]), torch.tensor([-1.0, 0.5, -3.0, 0.0])
    n_of = lambda ids: ids.shape[0]  # noqa: E731
    monkeypatch.setattr(
        m, "encode", FixedPosterior(lambda ids, _: (const_mu.expand(n_of(ids), -1), const_lv.expand(n_of(ids), -1)))
    )
    batches = [batch(6, seed=s) for s in range(4)]
    assert abs(mutual_information(m, batches, num_samples=3, generator=gen(0))) < 1e-3


def test_mi_is_log_n_when_posteriors_are_separated(monkeypatch):
    m = vae()

    def by_first_word(ids, _):
        mu = torch.zeros(ids.shape[0], 4)
        mu[:, 0] = 10.0 * ids[:, 1].float()  # components 10 apart, sd 0.1: no overlap
        return mu, torch.full((ids.shape[0], 4), math.log(0.01))

    monkeypatch.setattr(m, "encode", FixedPosterior(by_first_word))
    b = collate([[w, 5] for w in range(4, 24)], 0, 1, 2)  # 20 distinct first words
    mi = mutual_information(m, [b], num_samples=2, generator=gen(0))
    assert mi == pytest.approx(math.log(20), abs=1e-3)
    # He et al.'s analytic-entropy variant estimates the same thing, with more noise.
    mu, lv = collect_posteriors(m, [b])
    analytic = mutual_information_from_posteriors(mu, lv, num_samples=50, generator=gen(1), entropy="analytic")
    assert analytic == pytest.approx(math.log(20), abs=0.2)


def test_mi_chunking_is_exact():
    torch.manual_seed(0)
    mu, lv = torch.randn(37, 3), torch.randn(37, 3) - 1
    a = mutual_information_from_posteriors(mu, lv, num_samples=2, generator=gen(0), max_elements=10)
    b = mutual_information_from_posteriors(mu, lv, num_samples=2, generator=gen(0))
    assert a == pytest.approx(b, abs=1e-5) and 0 < b <= math.log(37) + 0.5


# -- corpus report ---------------------------------------------------------------------------------
KEYS = {"neg_elbo", "rec", "kl", "nll_iw", "ppl", "mi", "au", "num_sentences", "num_tokens"}


def test_evaluate_corpus_vae_reports_everything():
    m = vae(sharpen=True)
    data = sentences(23, seed=2)
    calls = []
    r = evaluate_corpus(m, data, iw_samples=20, batch_size=8, chunk_size=50, progress=lambda d, t: calls.append((d, t)))
    assert r.keys() >= KEYS
    assert r["num_sentences"] == 23 and r["num_tokens"] == sum(len(s) + 1 for s in data)
    assert calls[-1] == (23, 23)
    assert r["nll_iw"] < r["neg_elbo"] and r["neg_elbo"] == pytest.approx(r["rec"] + r["kl"])
    assert r["ppl"] == pytest.approx(math.exp(r["nll_iw"] * 23 / r["num_tokens"]), rel=1e-6)
    assert r["mi"] > 0 and 0 <= r["au"] <= 4
    # The compression view: bits per word is log2 ppl; rate + distortion is the negative ELBO in bits.
    assert r["bits_per_word"] == pytest.approx(math.log2(r["ppl"]), rel=1e-9)
    assert r["rate_bits"] == pytest.approx(r["kl"] / math.log(2)) and r["rate_bits"] > 0
    assert r["rate_bits"] + r["distortion_bits"] == pytest.approx(r["neg_elbo"] / math.log(2))
    same = evaluate_corpus(m, data, iw_samples=20, batch_size=8, chunk_size=50, progress=False)
    assert {k: same[k] for k in KEYS} == {k: r[k] for k in KEYS}  # seeded: reproducible
    again = evaluate_corpus(m, data, iw_samples=20, batch_size=8, chunk_size=30, progress=False)
    assert again["nll_iw"] == pytest.approx(r["nll_iw"], abs=1e-4) and again["mi"] == pytest.approx(r["mi"])
    # iw_samples=0 skips the bound; ppl then comes from the negative ELBO.
    r0 = evaluate_corpus(m, data, iw_samples=0, batch_size=8, progress=False)
    assert r0["nll_iw"] is None and r0.keys() >= KEYS
    assert r0["ppl"] == pytest.approx(math.exp(r0["neg_elbo"] * 23 / r0["num_tokens"]), rel=1e-6)
    # Training's validation figures (elbo_stats) share the analytic KL with the corpus report.
    stats = elbo_stats(m, [collate(data, 0, 1, 2)], seed=0)
    assert stats["kl"] == pytest.approx(r["kl"], rel=1e-5)


def test_evaluate_corpus_language_model():
    torch.manual_seed(0)
    lm = TextVAE(tiny(use_latent=False)).eval()
    data = sentences(11, seed=3)
    r = evaluate_corpus(lm, data, batch_size=4, progress=False)
    assert r.keys() >= KEYS
    assert r["kl"] == 0 and r["mi"] == 0 and r["au"] == 0
    nll = exact_nll(lm, collate(data, 0, 1, 2)).mean().item()
    assert r["nll_iw"] == pytest.approx(nll, rel=1e-5) and r["neg_elbo"] == pytest.approx(nll, rel=1e-5)
    assert r["ppl"] == pytest.approx(math.exp(nll * 11 / r["num_tokens"]), rel=1e-5)


def test_evaluate_corpus_progress_bar_goes_to_stderr(capsys):
    evaluate_corpus(vae(), sentences(5), iw_samples=2, batch_size=2, progress=True)
    captured = capsys.readouterr()
    assert "IW NLL (K=2)" in captured.err and captured.out == ""


# -- text metrics ------------------------------------------------------------------------------------
def test_bleu_extremes():
    texts = ["the cat sat on the mat today", "a dog ran in the park at noon"]
    assert corpus_bleu(texts, texts) == pytest.approx(100.0)
    disjoint = ["x1 x2 x3 x4 x5 x6 x7 x8", "y1 y2 y3 y4 y5 y6 y7 y8 y9"] * 20
    assert corpus_bleu(texts * 20, disjoint) < 1.0
    with pytest.raises(ValueError):
        corpus_bleu(texts, texts[:1])


def test_distinct_n():
    assert distinct_n(["a a", "a b"], 1) == pytest.approx(2 / 4)
    assert distinct_n(["a a", "a b"], 2) == pytest.approx(2 / 2)
    assert distinct_n(["a"], 2) == 0.0


def test_self_bleu():
    same = ["the cat sat on the mat"] * 5
    assert self_bleu(same) == pytest.approx(100.0)
    diverse = [
        "the cat sat on the mat",
        "a dog ran through the park",
        "stocks fell sharply on monday",
        "she sings in the choir",
        "rain is expected later tonight",
    ]
    assert self_bleu(diverse) < 30.0
    assert self_bleu(diverse + same, sample=4, seed=1) == self_bleu(diverse + same, sample=4, seed=1)


@pytest.mark.parametrize("prior,posterior", [("mog", "gaussian"), ("vamp", "iaf"), ("sphere", "vmf")])
def test_evaluate_corpus_with_other_priors_and_posteriors(prior, posterior):
    """Estimated KLs are averaged over the IW draws themselves, so -ELBO >= the IW bound holds exactly
    (Jensen on the same samples); vMF's KL is its constant."""
    torch.manual_seed(0)
    m = TextVAE(tiny(prior=prior, posterior=posterior, prior_components=3)).eval()
    data = sentences(13, seed=4)
    r = evaluate_corpus(m, data, iw_samples=16, batch_size=5, progress=False)
    assert r.keys() >= KEYS and all(math.isfinite(r[k]) for k in KEYS)
    assert r["nll_iw"] <= r["neg_elbo"] + 1e-5
    if posterior == "vmf":
        from textvae.model.posteriors import vmf_kl

        assert r["kl"] == pytest.approx(vmf_kl(4, m.config.vmf_kappa), rel=1e-5)
    r0 = evaluate_corpus(m, data, iw_samples=0, batch_size=5, progress=False)
    assert r0["nll_iw"] is None and math.isfinite(r0["kl"])


def test_elbo_stats_objective_is_the_elbo_without_a_floor_and_adds_the_floor_under_a_rate_target():
    data = [batch(6, seed=1), batch(5, seed=2)]
    plain = elbo_stats(vae(), data, seed=0)
    assert plain["objective"] == pytest.approx(plain["neg_elbo"], rel=1e-5)
    torch.manual_seed(0)
    # 40 nats over 4 dimensions: a 10-nat floor per dimension, far above an untrained encoder's KL, so
    # the loss charges the whole floor instead of the (smaller) KL the ELBO counts.
    floored = TextVAE(tiny(target_rate=40.0)).eval()
    stats = elbo_stats(floored, data, seed=0)
    assert max(stats["kl_per_dim"]) < 10.0
    assert stats["objective"] == pytest.approx(stats["rec"] + 40.0, rel=1e-5)
    assert stats["objective"] > stats["neg_elbo"]
    half = elbo_stats(floored, data, seed=0, beta=0.5)
    assert half["objective"] == pytest.approx(stats["rec"] + 20.0, rel=1e-5)
