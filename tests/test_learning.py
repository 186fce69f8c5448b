"""Does a model really learn? Trained on the synthetic corpus, whose factors are known and can be read
back from any generated sentence, its reconstructions keep the factors and its posterior means predict
them far above chance."""

import pytest

from textvae.data.synthetic import FACTORS, generate, parse
from textvae.evaluation.analysis import linear_probe
from textvae.model.vae import TextVAE
from textvae.presets import demo_config
from textvae.training.trainer import Trainer


def factor_report(model: TextVAE, n: int = 400) -> dict[str, dict[str, float]]:
    """Per factor: how often a greedy reconstruction keeps it, and a linear probe's held-out accuracy
    (with its majority-class baseline) on the posterior means of held-out sentences."""
    data = generate(n, seed=12345)  # a seed the training data never used
    texts = [s.text for s in data]
    recon = [parse(r) for r in model.reconstruct(texts)]
    mu = model.encode_text(texts).mu.numpy()
    report = {}
    for f in FACTORS:
        kept = sum(p is not None and p[f] == s.factors[f] for p, s in zip(recon, data)) / n
        probe = linear_probe(mu, [s.factors[f] for s in data])
        report[f] = {"kept": kept, "probe": probe["accuracy"], "majority": probe["majority"]}
    report["exact"] = sum(t == r for t, r in zip(texts, model.reconstruct(texts))) / n
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
    # Sentence type and subject number are decided by the first words, the first things a VAE learns to
    # carry in z; an untrained model keeps nothing (its output does not parse). The slow test below holds
    # the full demo model to much higher figures.
    for f in ("type", "number"):
        assert report[f]["kept"] >= 0.6, report


@pytest.mark.slow
def test_demo_model_learns_every_factor(tmp_path):
    cfg = demo_config().apply_overrides([f"train.output_dir={tmp_path / 'demo'}", "train.progress=false"])
    Trainer(cfg, log=lambda s: None).fit()
    report = factor_report(TextVAE.from_pretrained(tmp_path / "demo"), n=600)
    # Measured on one run: exact 0.54; kept subject 0.99, number 1.0, tense 0.99, sentiment 0.84, type 1.0;
    # linear probe subject 0.33 (majority 0.13), number 1.0, tense 0.78, type 1.0, sentiment 0.51 (0.5):
    # sentiment (the verb, mid-sentence) is carried non-linearly, so only its reconstruction is checked.
    assert report["exact"] >= 0.4, report
    for f in ("subject", "number", "tense", "type"):
        assert report[f]["kept"] >= 0.9, report
        assert report[f]["probe"] > report[f]["majority"] + 0.1, report
    assert report["sentiment"]["kept"] >= 0.7, report
