"""The literature's recipes on tiny models: BN-VAE keeps every dimension's KL above its floor, autoencoder
pretraining switches phase and resets the decoder, the plateau protocol decays the rate and stops."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from textvae.config import Config, ModelConfig, TrainConfig
from textvae.data.batching import collate
from textvae.errors import ConfigError
from textvae.model.objective import gaussian_kl
from textvae.model.posteriors import BatchNormedMeans
from textvae.model.vae import TextVAE
from textvae.training.checkpoint import TrainState
from textvae.training.recipes import phase_at, plateau_action, reset_decoder, resets_decoder_at
from textvae.training.schedules import beta_at, lr_at
from textvae.training.trainer import Trainer


# -- BN-VAE ------------------------------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    batch=st.integers(2, 40),
    gamma=st.floats(0.1, 2.0),
    spread=st.floats(1e-3, 30.0),
    offset=st.floats(-20.0, 20.0),
)
def test_bn_means_keep_each_dimensions_batch_kl_above_half_gamma_squared(seed, batch, gamma, spread, offset):
    """Whatever the encoder outputs (tiny or huge, shifted means; any log-variances), the batch-average KL
    of every dimension is at least gamma^2 / 2 in training mode."""
    g = torch.Generator().manual_seed(seed)
    raw_mu = offset + spread * torch.randn(batch, 6, generator=g)
    logvar = 3 * torch.randn(batch, 6, generator=g)
    norm = BatchNormedMeans(6, gamma).train()
    with torch.no_grad():
        norm.shift.copy_(torch.randn(6, generator=g))  # a learned shift only adds to the floor
    kl = gaussian_kl(norm(raw_mu), logvar).mean(0)
    var = raw_mu.var(0, unbiased=False)
    floor = gamma**2 / 2 * var / (var + BatchNormedMeans.EPS)  # the epsilon shrinks it for near-constant dims
    assert (kl >= floor * (1 - 1e-3)).all(), (kl, floor)
    assert (floor[var > 1e-2] > gamma**2 / 2 * 0.999).all()


def test_bn_vae_model_floor_gradients_and_evaluation():
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=30, embedding_size=8, hidden_size=12, latent_size=4, bn_gamma=0.5)
    model = TextVAE(cfg).train()
    batch = collate([[5, 6, 7, 8], [9, 10], [11, 12, 13], [14, 15, 16, 17, 18]], 0, 1, 2)
    out = model(batch, beta=1.0)
    assert (out.kl_per_dim >= 0.5**2 / 2 * 0.95).all(), out.kl_per_dim  # untrained: raw means vary ~1e-4
    out.loss.backward()
    assert model.mean_norm.shift.grad is not None and model.to_posterior.weight.grad.abs().sum() > 0
    model.eval()  # running statistics: a single sentence encodes, and the same sentence gives the same code
    one = collate([[5, 6, 7, 8]], 0, 1, 2)
    assert torch.allclose(model.encode_batch(one).mu, model.encode_batch(batch).mu[:1], atol=1e-6)


@pytest.mark.parametrize("family", [{"posterior": "vmf", "prior": "sphere"}, {"prior": "mog"}])
def test_bn_vae_is_refused_with_other_latent_families(family):
    with pytest.raises(ConfigError, match="bn_gamma"):
        TextVAE(ModelConfig(vocab_size=30, embedding_size=8, hidden_size=12, latent_size=4, bn_gamma=0.5, **family))


# -- schedules and decisions -------------------------------------------------------------------------
def test_autoencoder_phase_holds_beta_at_zero_then_starts_the_schedule():
    cfg = TrainConfig(ae_pretrain_steps=100, beta_schedule="linear", beta_warmup_steps=10, max_steps=300)
    assert [beta_at(s, cfg) for s in (0, 99, 100, 105, 110, 200)] == [0.0, 0.0, 0.0, 0.5, 1.0, 1.0]
    assert [phase_at(s, cfg) for s in (0, 99, 100)] == ["autoencoder", "autoencoder", "vae"]
    assert [resets_decoder_at(s, cfg) for s in (99, 100, 101)] == [False, True, False]
    assert not resets_decoder_at(100, TrainConfig(ae_pretrain_steps=100, reset_decoder=False))
    assert not resets_decoder_at(0, TrainConfig())


def test_plateau_decisions_and_learning_rate():
    cfg = TrainConfig(lr=1e-3, lr_schedule="plateau", lr_decay_patience=2, max_lr_decays=2, lr_decay_factor=0.5)
    state = TrainState()
    decisions = []
    for improved in [True, False, False, False, False, False, False]:
        state.evals_without_improvement = 0 if improved else state.evals_without_improvement + 1
        decisions.append(plateau_action(state, cfg))
    assert decisions == [None, None, "decay", None, "decay", None, "stop"]
    assert state.lr_decays == 2 and lr_at(1000, cfg, state.lr_decays) == pytest.approx(2.5e-4)
    assert plateau_action(TrainState(evals_without_improvement=9), TrainConfig()) is None  # other schedules


def test_reset_decoder_reinitialises_only_the_decoder_and_its_optimizer_state():
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=30, embedding_size=8, hidden_size=12, latent_size=4)
    model = TextVAE(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model(collate([[5, 6, 7], [8, 9]], 0, 1, 2)).loss.backward()
    opt.step()
    encoder = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    rng = torch.get_rng_state()
    reset_decoder(model, opt, seed=7)
    assert torch.equal(torch.get_rng_state(), rng)  # the training stream is untouched
    other = TextVAE(cfg)
    reset_decoder(other, torch.optim.AdamW(other.parameters()), seed=7)
    for (name, a), b in zip(model.decoder.state_dict().items(), other.decoder.state_dict().values(), strict=True):
        assert torch.equal(a, b), name  # a fresh initialisation, the same for the same seed
    assert all(torch.equal(v, encoder[k]) for k, v in model.encoder.state_dict().items())
    assert not any(p in opt.state for p in model.decoder.parameters())
    assert all(p in opt.state for p in model.encoder.parameters())


# -- in a run ----------------------------------------------------------------------------------------
def _run(out: Path, model: dict | None = None, **train) -> list[dict]:
    cfg = Config.from_dict(
        {
            "data": {"train": "synthetic", "synthetic_size": 300, "valid_fraction": 0.1},
            "model": {"embedding_size": 16, "hidden_size": 24, "latent_size": 4} | (model or {}),
            "train": {"batch_size": 16, "progress": False, "log_every": 1, "output_dir": str(out)} | train,
        }
    )
    Trainer(cfg, log=lambda s: None).fit()
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_autoencoder_pretraining_run_records_its_phases(tmp_path):
    records = _run(tmp_path / "run", max_steps=8, eval_every=8, ae_pretrain_steps=4)
    train = [r for r in records if r["split"] == "train"]
    assert [r["phase"] for r in train] == ["autoencoder"] * 4 + ["vae"] * 4
    assert all(r["beta"] == 0.0 for r in train[:4]) and train[-1]["beta"] > 0
    events = [r for r in records if r["split"] == "event"]
    assert events == [{"split": "event", "step": 4, "event": "decoder_reset", "phase": "vae"}]


def test_plateau_protocol_decays_returns_to_best_and_stops(tmp_path):
    """With a clipped-to-nothing gradient the weights never change, so every validation after the first is a
    plateau: the rate halves at each (patience 1) and the third plateau (max 2 decays) ends the run."""
    records = _run(
        tmp_path / "run",
        max_steps=40,
        eval_every=2,
        lr=1e-3,
        grad_clip=1e-30,
        lr_schedule="plateau",
        lr_decay_patience=1,
        max_lr_decays=2,
    )
    lrs = {r["step"]: r["lr"] for r in records if r["split"] == "train"}
    assert max(lrs) == 8  # stopped at the third plateau, long before max_steps
    assert [lrs[s] for s in (1, 4, 5, 6, 7, 8)] == pytest.approx([1e-3, 1e-3, 5e-4, 5e-4, 2.5e-4, 2.5e-4])
    valid = [r["neg_elbo"] for r in records if r["split"] == "valid"]
    assert len(valid) == 4 and all(math.isclose(v, valid[0], rel_tol=1e-6) for v in valid)


# -- aggressive inference-network training -----------------------------------------------------------
def _trainer(out: Path, **train) -> Trainer:
    cfg = Config.from_dict(
        {
            "data": {"train": "synthetic", "synthetic_size": 300, "valid_fraction": 0.1},
            "model": {"embedding_size": 16, "hidden_size": 24, "latent_size": 4},
            "train": {"batch_size": 16, "progress": False, "output_dir": str(out), "aggressive": True} | train,
        }
    )
    trainer = Trainer(cfg, log=lambda s: None)
    trainer._setup()
    return trainer


def test_aggressive_inner_loop_trains_the_encoder_alone_until_its_loss_stops_falling(tmp_path):
    from textvae.training.aggressive import CHECK_EVERY, decoder_only, encoder_inner_loop

    trainer = _trainer(tmp_path / "run", aggressive_max_inner=4 * CHECK_EVERY, lr=3e-3)
    model = trainer.model
    decoder = {k: v.clone() for k, v in model.decoder.state_dict().items()}
    encoder = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    inner = encoder_inner_loop(trainer, step=0)
    assert inner % CHECK_EVERY == 0 and CHECK_EVERY <= inner <= 4 * CHECK_EVERY  # stops only at a window's end
    assert all(torch.equal(v, decoder[k]) for k, v in model.decoder.state_dict().items())
    assert any(not torch.equal(v, encoder[k]) for k, v in model.encoder.state_dict().items())
    assert encoder_inner_loop(trainer, step=0) >= CHECK_EVERY  # the same draws for the same step
    model(trainer.data.train.collate(np.arange(8))).loss.backward()
    decoder_only(trainer)  # the outer step of the aggressive phase updates the decoder alone
    assert all(p.grad is None for p in model.encoder.parameters()) and model.to_posterior.weight.grad is None
    assert all(p.grad is not None for p in model.decoder.parameters())


def test_aggressive_run_reports_its_cost_and_ends_the_phase_when_mi_stops_rising(tmp_path):
    records = _run(tmp_path / "run", max_steps=6, eval_every=2, aggressive=True, aggressive_max_inner=15, lr=3e-3)
    train = [r for r in records if r["split"] == "train"]
    valid = [r for r in records if r["split"] == "valid"]
    assert "inner_steps" in train[0] and 1 <= train[0]["inner_steps"] <= 15
    with_mi = [r for r in valid if "mi" in r]
    assert with_mi and with_mi == valid[: len(with_mi)]  # MI is measured while the phase lasts
    if len(with_mi) < len(valid):  # the phase ended: no inner steps after it
        ended = with_mi[-1]["step"]
        assert all("inner_steps" not in r for r in train if r["step"] > ended)


def test_aggressive_training_is_refused_for_a_language_model(tmp_path):
    cfg = Config.from_dict(
        {
            "data": {"train": "synthetic", "synthetic_size": 100},
            "model": {"embedding_size": 8, "hidden_size": 8, "use_latent": False},
            "train": {"output_dir": str(tmp_path / "lm"), "aggressive": True, "progress": False},
        }
    )
    with pytest.raises(ConfigError, match="train.aggressive needs a VAE"):
        Trainer(cfg, log=lambda s: None).fit()


def test_aggressive_phase_ends_when_validation_mi_does_not_rise(tmp_path):
    from textvae.training.aggressive import after_validation

    trainer = _trainer(tmp_path / "run", max_steps=2)
    state = trainer.state
    batches = lambda: trainer.data.valid.batches(16)  # noqa: E731
    first = after_validation(trainer, state, batches())["mi"]
    assert state.aggressive_phase and state.best_mi == first
    state.best_mi = first + 1.0  # a later validation whose MI is lower than the best so far
    after_validation(trainer, state, batches())
    assert not state.aggressive_phase
