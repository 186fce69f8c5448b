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
    # A conditional model decodes under a label: show everything under its first one.
    label = vae.label_names[0] if vae.config.conditional and vae.label_names else None
    tag = f" (label {label})" if label is not None else ""
    if not vae.has_latent:  # a language model (model.use_latent=false): nothing to encode
        out(f"samples from the language model{tag}:")
        for s in vae.sample(5, DecodingConfig(strategy="sample", max_length=40), seed=0, label=label):
            out(f"  {s}")
        return
    labels = None if label is None else [label] * len(sentences)
    out(f"reconstructions (input -> output){tag}:")
    for src, rec in zip(sentences, vae.reconstruct(sentences, greedy, labels=labels)):
        out(f"  {src}\n  -> {rec}")
    out(f"samples from the prior{tag}:")
    for s in vae.sample(5, greedy, seed=0, label=label):
        out(f"  {s}")
    if len(sentences) >= 2:
        pair = None if labels is None else labels[:2]
        mu, _ = vae.encode_text(sentences[:2], labels=pair)
        alphas, z = interpolation_path(mu[0], mu[1], 6)
        out(f"interpolation{tag}:")
        with torch.no_grad():
            ids = vae.generate(z, decoding=greedy, labels=vae.label_ids(None if label is None else [label], 6))
        for a, t in zip(alphas.tolist(), vae.decode_ids(ids, greedy.detokenize)):
            out(f"  {a:.1f}  {t}")
