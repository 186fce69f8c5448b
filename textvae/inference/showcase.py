"""What ``textvae demo`` prints after training: reconstructions, prior samples, an interpolation."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from textvae.inference.interpolation import interpolation_path
from textvae.model.decoding import DecodingConfig
from textvae.model.vae import TextVAE


def showcase(model_dir: str | Path, sentences: Sequence[str], out: Callable[[str], None] = print) -> None:
    """Print greedy reconstructions of ``sentences``, five prior samples and a 6-step interpolation
    between the first two sentences, decoded by the model saved in ``model_dir``."""
    vae = TextVAE.from_pretrained(model_dir)
    greedy = DecodingConfig(max_length=40)
    if vae.encoder is None:  # a language model (model.use_latent=false): nothing to encode
        out("samples from the language model:")
        for s in vae.sample(5, DecodingConfig(strategy="sample", max_length=40), seed=0):
            out(f"  {s}")
        return
    out("reconstructions (input -> output):")
    for src, rec in zip(sentences, vae.reconstruct(sentences, greedy)):
        out(f"  {src}\n  -> {rec}")
    out("samples from the prior:")
    for s in vae.sample(5, greedy, seed=0):
        out(f"  {s}")
    if len(sentences) >= 2:
        mu, _ = vae.encode_text(sentences[:2])
        alphas, z = interpolation_path(mu[0], mu[1], 6)
        out("interpolation:")
        with torch.no_grad():
            texts = vae.decode_ids(vae.generate(z, decoding=greedy))
        for a, t in zip(alphas.tolist(), texts):
            out(f"  {a:.1f}  {t}")
