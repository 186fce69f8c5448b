"""The fused LSTM layer (textvae.model.fused_rnn) against PyTorch's nn.LSTM, forward and gradients.

In float32 products it must equal nn.LSTM to rounding; in bfloat16 products its error against float32 is
bounded, and on a CPU with native bf16 no larger than that of PyTorch's own bf16 LSTM kernel.
"""

import pytest
import torch
from torch import nn

from textvae.config import ModelConfig
from textvae.data.batching import collate
from textvae.model.fused_rnn import fused_applies, fused_lstm, layer_weights, run_fused
from textvae.model.precision import cpu_has_native_bf16
from textvae.model.vae import TextVAE


def _grads(loss: torch.Tensor, tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    return [g.float() for g in torch.autograd.grad(loss, tensors)]


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.detach().float() - b.detach().float()).norm() / b.detach().float().norm().clamp_min(1e-12))


def _setup(batch=3, steps=7, inp=5, hidden=6, layers=1, seed=0):
    torch.manual_seed(seed)
    rnn = nn.LSTM(inp, hidden, num_layers=layers, batch_first=True)
    x = torch.randn(batch, steps, inp, requires_grad=True)
    h0 = torch.randn(layers, batch, hidden, requires_grad=True)
    c0 = torch.randn(layers, batch, hidden, requires_grad=True)
    weights = torch.randn(steps, hidden)  # a loss that weighs every step and unit differently
    return rnn, x, (h0, c0), weights


def _loss(y, state, weights):
    h, c = state
    return (y.float() * weights).sum() + (h.float() * 0.3).sum() - (c.float() * 0.7).sum()


@pytest.mark.parametrize("layers", [1, 2])
def test_float32_products_equal_nn_lstm_forward_and_gradients(layers):
    rnn, x, state, weights = _setup(layers=layers)
    leaves = [x, *state, *rnn.parameters()]
    y_ref, s_ref = rnn(x, state)
    ref = _grads(_loss(y_ref, s_ref, weights), leaves)
    hs, cs = [], []
    y = x
    for layer in range(layers):  # run_fused with float32 products, layer by layer
        y, (h, c) = fused_lstm(y, (state[0][layer], state[1][layer]), *layer_weights(rnn, layer), torch.float32)
        hs.append(h)
        cs.append(c)
    s = (torch.stack(hs), torch.stack(cs))
    assert torch.allclose(y, y_ref, atol=1e-5)
    assert torch.allclose(s[0], s_ref[0], atol=1e-5) and torch.allclose(s[1], s_ref[1], atol=1e-5)
    for got, want in zip(_grads(_loss(y, s, weights), leaves), ref, strict=True):
        assert torch.allclose(got, want, atol=1e-5, rtol=1e-4)


def test_zero_state_and_no_input_gradient():
    rnn, x, _, weights = _setup()
    x = x.detach()  # an input that needs no gradient (the first layer's embeddings of a frozen encoder)
    y_ref, s_ref = rnn(x)
    y, s = fused_lstm(x, None, *layer_weights(rnn, 0), torch.float32)
    assert torch.allclose(y, y_ref, atol=1e-5)
    params = list(rnn.parameters())
    ref = _grads(_loss(y_ref, s_ref, weights), params)
    got = _grads(_loss(y, (s[0][None], s[1][None]), weights), params)
    assert all(torch.allclose(g, r, atol=1e-5) for g, r in zip(got, ref, strict=True))


def test_bfloat16_products_stay_close_to_float32():
    rnn, x, state, weights = _setup(batch=4, steps=12, inp=16, hidden=32)
    leaves = [x, *state, *rnn.parameters()]
    y_ref, s_ref = rnn(x, state)
    ref = _grads(_loss(y_ref, s_ref, weights), leaves)
    y, (h, c) = fused_lstm(x, (state[0][0], state[1][0]), *layer_weights(rnn, 0), torch.bfloat16)
    assert y.dtype == torch.bfloat16  # as autocast's own kernels return it
    assert _rel(y, y_ref) < 1e-2
    got = _grads(_loss(y, (h[None], c[None]), weights), leaves)
    for g, r in zip(got, ref, strict=True):
        assert _rel(g, r) < 2e-2
        assert g.dtype == torch.float32  # gradients of float32 leaves stay float32


@pytest.mark.skipif(not cpu_has_native_bf16(), reason="PyTorch's bf16 LSTM needs native bf16 on a CPU")
def test_bfloat16_error_no_larger_than_pytorchs_own_bf16_lstm():
    rnn, x, state, weights = _setup(batch=8, steps=20, inp=64, hidden=128)
    leaves = [x, *state, *rnn.parameters()]
    y_ref, s_ref = rnn(x, state)
    ref = _grads(_loss(y_ref, s_ref, weights), leaves)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y_native, s_native = rnn(x, state)
        assert fused_applies(rnn, x)
        y_fused, s_fused = run_fused(rnn, x, state)
    native = _grads(_loss(y_native, s_native, weights), leaves)
    fused = _grads(_loss(y_fused, s_fused, weights), leaves)
    assert _rel(y_fused, y_ref) <= 1.5 * _rel(y_native, y_ref) + 1e-3
    for f, n, r in zip(fused, native, ref, strict=True):
        assert _rel(f, r) <= 1.5 * _rel(n, r) + 1e-3


def test_fused_path_applies_only_to_training_lstms_under_cpu_bf16_autocast():
    lstm, gru = nn.LSTM(4, 4), nn.GRU(4, 4)
    x = torch.randn(2, 3, 4)
    assert not fused_applies(lstm, x)  # float32: oneDNN's kernel is faster
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert fused_applies(lstm, x)
        assert not fused_applies(lstm, x, enabled=False)  # model.fused_rnn=false
        assert not fused_applies(gru, x)
        with torch.no_grad():
            assert not fused_applies(lstm, x)  # inference: single steps, no backward to save


def _model(**kw) -> TextVAE:
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=30, embedding_size=8, hidden_size=12, latent_size=4, dropout=0.0, **kw)
    return TextVAE(cfg)


@pytest.mark.parametrize("extra", [{}, {"decoder_layers": 2, "encoder_layers": 2}, {"z_conditioning": "init"}])
def test_model_loss_and_gradients_with_the_fused_layer_match_float32(extra):
    """The whole VAE (BiLSTM encoder without packing, LSTM decoder with z in its initial state) trained
    through the fused layer in bf16 stays within bf16 rounding of the float32 model."""
    batch = collate([[5, 6, 7, 8, 9, 10], [11, 12], [13, 14, 15]], 0, 1, 2)
    eps = torch.randn(3, 4)
    ref_model, fused_model = _model(word_dropout=0.0, **extra), _model(word_dropout=0.0, **extra)
    ref = ref_model(batch, eps=eps)
    ref.loss.backward()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = fused_model(batch, eps=eps)
    out.loss.backward()
    assert abs(out.loss.item() - ref.loss.item()) / abs(ref.loss.item()) < 1e-2
    for (name, p), q in zip(fused_model.named_parameters(), ref_model.parameters(), strict=True):
        if q.grad is not None and q.grad.norm() > 1e-6:
            assert _rel(p.grad, q.grad) < 5e-2, name
