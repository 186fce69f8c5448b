"""Does a model really learn? Trained on the synthetic corpus, whose factors are known and can be read
back from any generated sentence, its reconstructions keep the factors and its posterior means predict
them far above chance."""

import pytest

from textvae.data.synthetic import FACTORS, generate, parse
from textvae.evaluation.analysis import linear_probe
from textvae.model.decoding import DecodingConfig
from textvae.model.vae import TextVAE
from textvae.presets import demo_config
from textvae.training.trainer import Trainer


def factor_report(model: TextVAE, n: int = 400) -> dict[str, dict[str, float]]:
    """Per factor: how often a greedy reconstruction keeps it, and a linear probe's held-out accuracy
    (with its majority-class baseline) on the posterior means of held-out sentences."""
    data = generate(n, seed=12345)  # a seed the training data never used
    texts = [s.text for s in data]
    raw = model.reconstruct(texts, DecodingConfig(detokenize=False))  # the tokens, as the grammar has them
    recon = [parse(r) for r in raw]
    mu = model.encode_text(texts).mu.numpy()
    report = {}
    for f in FACTORS:
        kept = sum(p is not None and p[f] == s.factors[f] for p, s in zip(recon, data)) / n
        probe = linear_probe(mu, [s.factors[f] for s in data])
        report[f] = {"kept": kept, "probe": probe["accuracy"], "majority": probe["majority"]}
    report["exact"] = sum(t == r for t, r in zip(texts, raw)) / n
    return report


def test_small_model_learns_the_synthetic_factors(tmp_path):
    # The demo model, trained for a fifth of the demo's steps on a smaller corpus.
    cfg = demo_config().apply_overrides(
        [
            "data.synthetic_size=5000",
            "train.max_steps=300",
            "train.eval_every=300",
            "train.beta_warmup_steps=150",
            "train.eval_max_sentences=200",
            f"train.output_dir={tmp_path / 'run'}",
            "train.progress=false",
        ]
    )
    result = Trainer(cfg, log=lambda s: None).fit()
    assert result["au"] >= 4  # the latent space is in use
    report = factor_report(TextVAE.from_pretrained(tmp_path / "run"))
    # Sentence type (the first word and the final mark) and sentiment (one polarity word, the same in every
    # sentence of a polarity) are the first things a VAE learns to carry in z: measured 1.0 kept for both
    # and a sentiment probe of 1.0, while number is still near chance (0.61) at this length. An untrained
    # model keeps nothing (its output does not parse). The slow test below holds the full demo model to
    # higher figures on every factor.
    for f in ("type", "sentiment"):
        assert report[f]["kept"] >= 0.8, report
    assert report["sentiment"]["probe"] >= 0.9, report  # one direction of z, not a non-linear code


@pytest.mark.slow
def test_demo_model_learns_every_factor(tmp_path):
    cfg = demo_config().apply_overrides([f"train.output_dir={tmp_path / 'demo'}", "train.progress=false"])
    Trainer(cfg, log=lambda s: None).fit()
    report = factor_report(TextVAE.from_pretrained(tmp_path / "demo"), n=600)
    # Measured on two runs (train.seed 0 / 1, word dropout 0.1): exact 0.24 / 0.51; kept >= 0.99 for every
    # factor; linear probe subject 0.27 / 0.41 (majority 0.15), number 1.0, tense 0.89 / 0.80 (0.37),
    # sentiment 1.0, type 1.0. With word dropout 0.3 exact was 0.05 / 0.12 (same day, same seeds): z carried
    # the factors but fewer content words (the verb and the object are the usual misses).
    assert report["exact"] >= 0.05, report
    for f in FACTORS:
        assert report[f]["kept"] >= 0.9, report
        assert report[f]["probe"] > report[f]["majority"] + 0.1, report
    assert report["sentiment"]["probe"] >= 0.95, report
