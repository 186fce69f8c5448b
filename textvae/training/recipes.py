"""Training recipes from the text-VAE literature that act between steps rather than inside the loss.

* **Autoencoder pretraining, then a decoder reset** (Li et al. 2019, "A surprisingly effective fix for deep
  latent variable modeling of text"): for ``train.ae_pretrain_steps`` the KL weight is 0 (the schedule in
  :func:`textvae.training.schedules.beta_at`), so the encoder learns codes that carry the sentence; then the
  decoder is re-initialised (``train.reset_decoder``) and VAE training starts, so the new decoder learns to
  read those codes instead of modelling the text without them.
* **Validation-driven learning-rate decay** (the protocol of He et al. 2019 and Li et al. 2019,
  ``train.lr_schedule=plateau``): after ``lr_decay_patience`` validations without improvement, training
  returns to the best weights and the rate is multiplied by ``lr_decay_factor``; a plateau after
  ``max_lr_decays`` decays ends the run, which is what "trained to convergence" means in those papers.

(BN-VAE is a model switch, ``model.bn_gamma``: :class:`textvae.model.posteriors.BatchNormedMeans`.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from textvae.config import TrainConfig
from textvae.errors import ConfigError
from textvae.model.decoders import build_decoder

if TYPE_CHECKING:
    from textvae.model.vae import TextVAE
    from textvae.training.checkpoint import TrainState


def phase_at(step: int, cfg: TrainConfig) -> str:
    """``"autoencoder"`` during autoencoder pretraining (steps ``< ae_pretrain_steps``, 0-based), else ``"vae"``."""
    return "autoencoder" if step < cfg.ae_pretrain_steps else "vae"


def resets_decoder_at(step: int, cfg: TrainConfig) -> bool:
    """True for the step (0-based) before which the decoder is re-initialised: the first VAE step."""
    return cfg.reset_decoder and cfg.ae_pretrain_steps > 0 and step == cfg.ae_pretrain_steps


def reset_decoder(model: TextVAE, optimizer: torch.optim.Optimizer, seed: int) -> None:
    """Re-initialise ``model.decoder`` as a new model of the same config would be (its own initialisation,
    drawn from ``seed``) and forget the optimizer's moments for its parameters. The global random state is
    left as it was, so a run resumed from before the reset continues identically."""
    if model.config.decoder == "pretrained":
        raise ConfigError(
            "train.reset_decoder would re-initialise a pretrained decoder; set train.reset_decoder=false to keep "
            "its weights after autoencoder pretraining"
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        fresh = build_decoder(model.config)
    model.decoder.load_state_dict(fresh.state_dict())
    for p in model.decoder.parameters():
        optimizer.state.pop(p, None)


def plateau_action(state: TrainState, cfg: TrainConfig) -> str | None:
    """After a validation (``state.evals_without_improvement`` already updated): ``"decay"`` when the rate
    should drop (the caller reloads the best weights; the count is updated here), ``"stop"`` when a plateau
    comes after ``max_lr_decays`` decays, else None. Only for ``lr_schedule=plateau``."""
    if cfg.lr_schedule != "plateau" or state.evals_without_improvement < cfg.lr_decay_patience:
        return None
    if state.lr_decays >= cfg.max_lr_decays:
        return "stop"
    state.lr_decays += 1
    state.evals_without_improvement = 0
    return "decay"
