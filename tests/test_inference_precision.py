"""Inference in bfloat16 (TextVAE.set_precision, --precision): the same greedy sentences as float32 in most
cases and likelihood figures within 0.5%, on a trained tiny model."""

from pathlib import Path

import pytest
import torch

from textvae.cli import main
from textvae.config import Config
from textvae.data.batching import collate
from textvae.errors import ConfigError
from textvae.evaluation.likelihood import iw_nll
from textvae.model import precision
from textvae.model.vae import TextVAE
from textvae.training.trainer import Trainer

NATIVE = precision.cpu_has_native_bf16()
# LSTM layers have no emulated bf16 kernel: off native units only the Transformer model runs in bf16.
KINDS = ["lstm", "transformer"] if NATIVE else ["transformer"]


def _train(out: Path, kind: str) -> Path:
    model = {"embedding_size": 16, "hidden_size": 32, "latent_size": 4, "free_bits": 0.5}
    if kind == "transformer":
        model |= {"encoder": "transformer", "decoder": "transformer", "num_heads": 2, "encoder_layers": 1}
    cfg = Config.from_dict(
        {
            "data": {"train": "synthetic", "synthetic_size": 600, "valid_fraction": 0.1},
            "model": model,
            "train": {
                "output_dir": str(out),
                "max_steps": 300 if kind == "transformer" else 150,
                "lr": 0.002,
                "batch_size": 32,
                "eval_every": 150,
                "progress": False,
                "precision": "float32",
            },
        }
    )
    Trainer(cfg, log=lambda s: None).fit()
    return out / "best"


@pytest.fixture(scope="module", params=KINDS)
def trained(request, tmp_path_factory) -> Path:
    return _train(tmp_path_factory.mktemp(request.param), request.param)


def test_bf16_greedy_sentences_match_float32_in_most_cases(trained):
    model = TextVAE.from_pretrained(trained).eval()
    z = model.sample_prior(200, torch.Generator().manual_seed(0))
    assert model.set_precision("float32") is None
    reference = model.generate(z)
    assert model.set_precision("bfloat16") is torch.bfloat16
    fast = model.generate(z)
    same = sum(a == b for a, b in zip(reference, fast, strict=True)) / len(reference)
    # Measured: 92.5% (LSTM), 68% (Transformer: this tiny one's top two logits are often within bf16's
    # rounding; a sentence counts as different from the first token that flips).
    assert same >= (0.8 if "lstm" in str(trained) else 0.6), same
    assert len({tuple(s) for s in reference}) > 20  # the model generates varied sentences, not one


def test_bf16_likelihoods_within_half_a_percent_of_float32(trained):
    model = TextVAE.from_pretrained(trained).eval()
    model.set_precision("float32")
    sentences = [s for s in model.generate(model.sample_prior(40, torch.Generator().manual_seed(1))) if s]
    batch = collate(sentences, model.config.pad_id, model.config.bos_id, model.config.eos_id)

    def bound(p: str) -> torch.Tensor:
        model.set_precision(p)
        return iw_nll(model, batch, 50, generator=torch.Generator().manual_seed(2))

    reference, fast = bound("float32"), bound("bfloat16")
    assert abs(fast.mean() / reference.mean() - 1) < 0.005
    assert ((fast - reference).abs() / reference).max() < 0.02
    mu_ref = (model.set_precision("float32"), model.encode_batch(batch).mu)[1]
    mu_fast = (model.set_precision("bfloat16"), model.encode_batch(batch).mu)[1]
    assert mu_fast.dtype == torch.float32 and torch.allclose(mu_fast, mu_ref, atol=0.05)


def test_explicit_bf16_is_refused_for_an_lstm_without_native_units(monkeypatch, tmp_path):
    model = TextVAE(Config.from_dict({"model": {"vocab_size": 20, "hidden_size": 8, "embedding_size": 8}}).model)
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    assert model.set_precision("auto") is None  # auto falls back to float32
    with pytest.raises(ConfigError, match="precision=bfloat16: this CPU has no native bfloat16"):
        model.set_precision("bfloat16")
    with pytest.raises(ConfigError, match="precision must be auto, float32 or bfloat16"):
        model.set_precision("fp8")


def test_cli_precision_flag(trained, capsys):
    assert main(["sample", str(trained), "-n", "3", "--precision", "bfloat16", "--json"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 3
    with pytest.raises(SystemExit) as exit_:  # argparse's own error
        main(["sample", str(trained), "-n", "1", "--precision", "half"])
    assert exit_.value.code == 2 and "invalid choice: 'half'" in capsys.readouterr().err
