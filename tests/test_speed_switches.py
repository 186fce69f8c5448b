"""The performance switches change speed, not results: padding skipped or not, bf16 autocast, torch.compile."""

import pytest
import torch

from textvae.config import Config, ModelConfig
from textvae.data.batching import collate
from textvae.errors import ConfigError
from textvae.model import precision
from textvae.model.precision import autocast_dtype
from textvae.model.vae import TextVAE
from textvae.training.trainer import Trainer


def tiny_model(**kw) -> TextVAE:
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=30, embedding_size=8, hidden_size=12, latent_size=4, **kw)
    return TextVAE(cfg).eval()


BATCH = collate([[5, 6, 7, 8, 9, 10], [11, 12], [13, 14, 15]], 0, 1, 2)


def test_padding_skipped_or_not_gives_the_same_decoder_loss():
    fast, plain = tiny_model(), tiny_model(skip_padding=False)
    plain.load_state_dict(fast.state_dict())
    code = torch.randn(3, 4)
    a, n_a = fast.sentence_nll(BATCH.input_ids, BATCH.lengths, fast.decoder_code(code, None))
    b, n_b = plain.sentence_nll(BATCH.input_ids, BATCH.lengths, plain.decoder_code(code, None))
    assert n_a == n_b == 6 + 2 + 3 + 3
    assert torch.allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("pooling", ["last", "mean", "max"])
def test_unidirectional_encoder_summary_is_the_same_with_or_without_packing(pooling):
    fast = tiny_model(bidirectional=False, rnn_pooling=pooling)
    plain = tiny_model(bidirectional=False, rnn_pooling=pooling, skip_padding=False)
    plain.load_state_dict(fast.state_dict())
    assert torch.allclose(fast.encode_batch(BATCH)[0], plain.encode_batch(BATCH)[0], atol=1e-5)


def test_precision_choice(monkeypatch):
    cpu = torch.device("cpu")
    assert autocast_dtype("float32", cpu) is None
    assert autocast_dtype("bfloat16", cpu) is torch.bfloat16
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    assert autocast_dtype("auto", cpu) is None  # emulated bf16 is slower than float32: stay in float32
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    assert autocast_dtype("auto", cpu) is torch.bfloat16
    with pytest.raises(ConfigError):
        autocast_dtype("half", cpu)
    with pytest.raises(ConfigError, match="precision"):
        Config().apply_overrides(["train.precision=fp8"])


def small_run(out, model=None, **train) -> dict:
    cfg = Config.from_dict(
        {
            "data": {"train": "synthetic", "synthetic_size": 400, "valid_fraction": 0.1},
            "model": {"embedding_size": 16, "hidden_size": 24, "latent_size": 4} | (model or {}),
            "train": {"max_steps": 30, "batch_size": 16, "eval_every": 30, "progress": False, "lr": 3e-3}
            | train
            | {"output_dir": str(out)},
        }
    )
    return Trainer(cfg, log=lambda s: None).fit()


TRANSFORMER = {"encoder": "transformer", "decoder": "transformer", "num_heads": 2}


def test_bfloat16_training_matches_float32_closely(tmp_path):
    # Transformer layers: emulated bf16 works on any CPU (LSTMs need native bf16, see the next test).
    fp32 = small_run(tmp_path / "fp32", precision="float32", model=TRANSFORMER)
    bf16 = small_run(tmp_path / "bf16", precision="bfloat16", model=TRANSFORMER)
    assert bf16["neg_elbo"] == pytest.approx(fp32["neg_elbo"], rel=0.03)
    assert bf16["rec"] == pytest.approx(fp32["rec"], rel=0.03)


def test_bfloat16_lstm_on_a_cpu_without_native_bf16_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    with pytest.raises(ConfigError, match="native bfloat16"):
        autocast_dtype("bfloat16", torch.device("cpu"), recurrent=True)
    assert autocast_dtype("auto", torch.device("cpu"), recurrent=True) is None


def test_bfloat16_forward_is_close_to_float32():
    model = tiny_model(**TRANSFORMER)
    with torch.no_grad():
        ref = model(BATCH, sample=False)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(BATCH, sample=False)
    assert low.rec.dtype == torch.float32  # the loss itself stays float32
    assert low.rec.item() == pytest.approx(ref.rec.item(), rel=0.02)


@pytest.mark.slow
def test_compiled_training_runs_and_matches_eager(tmp_path):
    eager = small_run(tmp_path / "eager", max_steps=6, eval_every=6)
    compiled = small_run(tmp_path / "compiled", max_steps=6, eval_every=6, compile=True)
    assert compiled["neg_elbo"] == pytest.approx(eager["neg_elbo"], rel=1e-3)
    TextVAE.from_pretrained(tmp_path / "compiled")  # a normal model directory, no compiled wrapper names


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("pooling", ["last", "mean", "max"])
def test_encoder_without_packing_equals_a_packed_sequence(cell, pooling):
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    from textvae.model.encoders import RNNEncoder

    torch.manual_seed(0)
    from textvae.config import ModelConfig

    cfg = ModelConfig(
        encoder=cell, vocab_size=30, embedding_size=8, hidden_size=12, encoder_layers=2, rnn_pooling=pooling
    )
    enc = RNNEncoder(cfg).eval()
    ids, lengths = BATCH.input_ids, BATCH.lengths
    emb = enc.embedding(ids)
    packed_out, h = enc.rnn(pack_padded_sequence(emb, lengths, batch_first=True, enforce_sorted=False))
    out, _ = pad_packed_sequence(packed_out, batch_first=True)
    real = (torch.arange(out.shape[1])[None, :] < lengths[:, None]).unsqueeze(-1)
    h_n = h[0] if cell == "lstm" else h
    expected = {
        "last": torch.cat(list(h_n.view(2, 2, len(ids), 12)[-1]), dim=-1),
        "mean": (out * real).sum(1) / real.sum(1),
        "max": out.masked_fill(~real, float("-inf")).amax(1),
    }[pooling]
    with torch.no_grad():
        assert torch.allclose(enc(ids, lengths), expected, atol=1e-5)
