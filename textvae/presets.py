"""Built-in configurations. ``configs/demo.yaml`` mirrors :func:`demo_config` (a test keeps them equal)."""

from __future__ import annotations

from textvae.config import Config


def demo_config() -> Config:
    """A small VAE on the embedded synthetic corpus: a few minutes on 2 CPU cores."""
    return Config.from_dict(
        {
            "data": {"train": "synthetic", "synthetic_size": 20000, "max_length": 20},
            "model": {
                "embedding_size": 128,
                "hidden_size": 256,
                "latent_size": 16,
                # 0.3 left the decoder blind to its own earlier words often enough that it took agreement
                # and the final ./? from z alone: prior draws decoded to mixed sentences more often.
                "word_dropout": 0.1,
                "free_bits": 2.0,
                "rnn_pooling": "mean",
            },
            "train": {
                "output_dir": "runs/demo",
                "max_steps": 1500,
                "batch_size": 64,
                "lr": 0.002,
                "beta_schedule": "linear",
                "beta_warmup_steps": 600,
                "eval_every": 250,
                "eval_max_sentences": 1000,
            },
        }
    )
