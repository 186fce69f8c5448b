"""Aggressive inference-network training (He et al. 2019, "Lagging inference networks and posterior collapse
in variational autoencoders"), ``train.aggressive=true``.

Early in training the decoder learns faster than the encoder can follow, and by the time q(z|x) would be
informative the decoder has learnt to ignore z. He et al.'s fix: before each normal step, update the encoder
side alone on fresh training batches until its objective stops improving (the loss per target token, summed
over windows of ``CHECK_EVERY`` inner steps, no longer falls; at most ``train.aggressive_max_inner`` steps);
the normal step then updates the decoder alone. The phase ends at the first validation whose mutual
information I(x; z) is not above the previous one; from then on training is the usual alternation-free step.

The extra cost is the inner steps: each train record carries ``inner_steps`` (their mean per step), and the
run's log says when the phase ends. Not for data-parallel runs (the inner loop is per process).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import torch

from textvae.errors import ConfigError
from textvae.evaluation.likelihood import mutual_information
from textvae.model.precision import autocast
from textvae.training.schedules import beta_at

if TYPE_CHECKING:
    from textvae.training.checkpoint import TrainState
    from textvae.training.trainer import Trainer

CHECK_EVERY = 15  # inner steps per window of the stopping test (He et al.'s value)


def check_aggressive(trainer: Trainer) -> None:
    """Refuse what the inner loop cannot do: data-parallel training, a model without a latent."""
    if trainer.config.train.aggressive and (trainer.dist.enabled or not trainer.model.has_latent):
        raise ConfigError("train.aggressive needs a VAE (model.use_latent=true) trained in a single process")


def encoder_inner_loop(trainer: Trainer, step: int) -> int:
    """Update everything but the decoder on random training batches (drawn from ``(train.seed, step)``, so a
    resumed run draws the same) until the encoder's loss per target token stops falling. Returns the
    number of inner updates made."""
    tc, model, data = trainer.config.train, trainer.model, trainer.data.train
    rng = np.random.default_rng((tc.seed, step, 1))
    beta = beta_at(step, tc)
    previous, window_loss, window_tokens = math.inf, 0.0, 0
    for inner in range(1, tc.aggressive_max_inner + 1):
        idx = rng.choice(len(data), size=min(tc.batch_size, len(data)), replace=False)
        batch = data.collate(idx).to(trainer.device)
        with autocast(trainer.device, trainer.autocast_dtype):
            out = model(batch, beta=beta)
        trainer.optimizer.zero_grad(set_to_none=True)
        if not math.isfinite(out.loss.item()):
            return inner - 1  # the outer step's guard deals with a diverging model
        out.loss.backward()
        for p in model.decoder.parameters():
            p.grad = None  # AdamW leaves parameters without a gradient alone
        torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip if tc.grad_clip > 0 else math.inf)
        trainer.optimizer.step()
        window_loss += out.loss.item() * len(idx)
        window_tokens += batch.num_target_tokens
        if inner % CHECK_EVERY == 0:
            current = window_loss / max(window_tokens, 1)
            if current >= previous:
                return inner
            previous, window_loss, window_tokens = current, 0.0, 0
    return tc.aggressive_max_inner


def decoder_only(trainer: Trainer) -> None:
    """Drop the encoder side's gradients of the outer step: in the aggressive phase it updates the decoder."""
    decoder = {id(p) for p in trainer.model.decoder.parameters()}
    for p in trainer.model.parameters():
        if id(p) not in decoder:
            p.grad = None


def after_validation(trainer: Trainer, state: TrainState, batches: list) -> dict[str, float]:
    """While aggressive: the validation MI (nats), and the end of the phase when it did not rise."""
    mi = mutual_information(trainer.model, batches, generator=torch.Generator().manual_seed(trainer.config.train.seed))
    if mi <= state.best_mi:
        state.aggressive_phase = False
        trainer.log(f"step {state.step}: validation MI {mi:.2f} did not rise; aggressive encoder training ends")
    state.best_mi = max(state.best_mi, mi)
    return {"mi": mi}
