"""A one-layer, one-direction LSTM written for bfloat16 matrix units, with a hand-written backward pass.

Why not ``nn.LSTM`` there: oneDNN's bf16 LSTM kernel reaches about half of a CPU's bf16 matrix-product peak
with AVX512-BF16 and a fifth with AMX (measured; docs/PERFORMANCE.md), while a plain matrix product of the
same shapes comes close to the peak. This layer spends almost all its FLOPs in such products:

* forward: the input side of all time steps is **one** ``[B*T, I] x [I, 4H]`` product; per step only the
  recurrent ``[B, H] x [H, 4H]`` product and the gate arithmetic remain;
* backward: per step only ``[B, 4H] x [4H, H]`` (the gradient into the previous hidden state); the weight
  gradients of all steps are then **two** large products (``dG^T h`` and ``dG^T x``), and the input gradient
  one more.

Matrix products run in bf16 with float32 accumulation; the cell state, the gates and the gradients that
flow through time stay float32, as in oneDNN's bf16 kernel, so it tracks the float32 ``nn.LSTM`` as closely
(tests/test_fused_rnn.py bounds both against float32). Weights and gate order are ``nn.LSTM``'s, so a
model trained with one path loads and runs with the other.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class _FusedLSTM(torch.autograd.Function):
    """``(x [B, T, I], h0 [B, H], c0 [B, H], w_ih [4H, I], w_hh [4H, H], bias [4H]) -> (y [B, T, H], hT, cT)``.

    ``dtype``: the precision of the matrix products (bf16 here; float32 works too, for tests). Internally
    time-major (``[T, B, ...]``), so each step reads and writes contiguous rows. ``tanh(a) = 2 sigmoid(2a) - 1``
    lets one sigmoid call serve all four gates (a CPU's tanh is several times slower than its sigmoid).
    """

    @staticmethod
    def forward(ctx, x, h0, c0, w_ih, w_hh, bias, dtype):  # noqa: ANN001, ANN205 (autograd's signature)
        b, t, _ = x.shape
        hidden = w_hh.shape[1]
        h2, h3 = 2 * hidden, 3 * hidden
        w_ih_m, w_hh_m = w_ih.to(dtype), w_hh.to(dtype)  # [4H, I], [4H, H] (nn.LSTM's gate order i, f, g, o)
        xs = x.to(dtype).transpose(0, 1).reshape(t * b, -1)  # [T*B, I] time-major
        # Input side of every step at once; float32 from here on (the gates' precision).
        gx = torch.mm(xs, w_ih_m.t()).float().add_(bias.float()).view(t, b, 4 * hidden)
        w_hh_fwd = w_hh_m.t()  # [H, 4H] view: h @ W
        act = torch.empty(t, b, 4 * hidden, dtype=torch.float32, device=x.device)  # sigmoid(i, f), g, sigmoid(o)
        cells = torch.empty(t + 1, b, hidden, dtype=torch.float32, device=x.device)  # c_0 .. c_T
        tanh_c = torch.empty(t, b, hidden, dtype=torch.float32, device=x.device)
        hs = torch.empty(t + 1, b, hidden, dtype=dtype, device=x.device)  # h_0 .. h_T in matmul precision
        cells[0] = c0
        hs[0] = h0
        for s in range(t):
            a = act[s]
            pre = gx[s].add_(torch.mm(hs[s], w_hh_fwd))
            pre[:, h2:h3].mul_(2)  # the g gate's pre-activation doubled: tanh(a) = 2 sigmoid(2a) - 1
            torch.sigmoid(pre, out=a)
            g = a[:, h2:h3].mul_(2).sub_(1)
            c = torch.mul(a[:, hidden:h2], cells[s], out=cells[s + 1]).addcmul_(a[:, :hidden], g)
            tc = torch.sigmoid(c * 2, out=tanh_c[s]).mul_(2).sub_(1)
            torch.mul(a[:, h3:], tc, out=hs[s + 1])
        ctx.save_for_backward(xs, w_ih_m, w_hh_m, act, cells, tanh_c, hs)
        ctx.dtypes = (x.dtype, h0.dtype, c0.dtype, w_ih.dtype, w_hh.dtype, bias.dtype)
        # Outputs are copies, never views of what backward reads. y [B, T, H] is in the products' precision,
        # as autocast's own LSTM returns it.
        y = hs[1:].transpose(0, 1).contiguous()
        return y, hs[t].to(h0.dtype, copy=True), cells[t].to(c0.dtype, copy=True)

    @staticmethod
    def backward(ctx, dy, dh_last, dc_last):  # noqa: ANN001, ANN205
        xs, w_ih_m, w_hh_m, act, cells, tanh_c, hs = ctx.saved_tensors
        x_dtype, h_dtype, c_dtype, wih_dtype, whh_dtype, bias_dtype = ctx.dtypes
        t, b, hidden = tanh_c.shape
        h2, h3 = 2 * hidden, 3 * hidden
        dtype = hs.dtype
        dgates = torch.empty(t, b, 4 * hidden, dtype=dtype, device=act.device)
        up = torch.empty(b, 4 * hidden, dtype=torch.float32, device=act.device)  # dL/d(gate value)
        dh = dh_last.float() if dh_last is not None else act.new_zeros(b, hidden)
        dc = dc_last.float() if dc_last is not None else act.new_zeros(b, hidden)
        dy = dy.transpose(0, 1).float() if dy is not None else None  # [T, B, H]
        for s in range(t - 1, -1, -1):
            dh = dy[s] + dh if dy is not None else dh.float()  # float32 (dh is the matmul's output)
            a, tc = act[s], tanh_c[s]
            i, f, g = a[:, :hidden], a[:, hidden:h2], a[:, h2:h3]
            dc = dc.addcmul(dh * a[:, h3:], torch.addcmul(_ONE, tc, tc, value=-1))
            torch.mul(dc, g, out=up[:, :hidden])
            torch.mul(dc, cells[s], out=up[:, hidden:h2])
            torch.mul(dc, i, out=up[:, h2:h3])
            torch.mul(dh, tc, out=up[:, h3:])
            torch.mul(up, a - a * a, out=dgates[s])  # sigmoid' for i, f, o; the g block is redone next
            torch.mul(up[:, h2:h3], torch.addcmul(_ONE, g, g, value=-1), out=dgates[s, :, h2:h3])
            dc = dc * f
            dh = torch.mm(dgates[s], w_hh_m)  # matmul precision; added in float32 above
        flat = dgates.view(t * b, 4 * hidden)
        # The weight gradients of all steps, each as one large product.
        d_whh = torch.mm(flat.t(), hs[:-1].reshape(t * b, hidden))
        d_wih = torch.mm(flat.t(), xs)
        dx = None
        if ctx.needs_input_grad[0]:
            dx = torch.mm(flat, w_ih_m).view(t, b, -1).transpose(0, 1).to(x_dtype)
        return (
            dx,
            dh.to(h_dtype),
            dc.to(c_dtype),
            d_wih.to(wih_dtype),
            d_whh.to(whh_dtype),
            flat.float().sum(0).to(bias_dtype),
            None,
        )


_ONE = torch.tensor(1.0)


def fused_lstm(
    x: Tensor,
    state: tuple[Tensor, Tensor] | None,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor,
    b_hh: Tensor,
    dtype: torch.dtype = torch.bfloat16,
) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """One LSTM layer over ``x [B, T, I]`` (batch first) from ``state = (h0 [B, H], c0 [B, H])`` (zeros if
    None) with ``nn.LSTM``'s weights -> ``(y [B, T, H], (hT [B, H], cT [B, H]))``. ``dtype``: the matrix
    products' precision (accumulation is float32 either way)."""
    hidden = w_hh.shape[1]
    if state is None:
        zeros = x.new_zeros(x.shape[0], hidden, dtype=torch.float32)
        state = (zeros, zeros)
    y, h, c = _FusedLSTM.apply(x, state[0], state[1], w_ih, w_hh, b_ih + b_hh, dtype)
    return y, (h, c)


def fused_applies(rnn: nn.Module, x: Tensor, enabled: bool = True) -> bool:
    """Whether :func:`fused_lstm` should run ``rnn``'s layers on ``x`` instead of PyTorch's kernel: an LSTM
    being trained (gradients on) on a CPU under bfloat16 autocast. Elsewhere the native kernels are faster
    (float32: oneDNN; CUDA: cuDNN; a single decoding step has no time loop to speed up)."""
    return (
        enabled
        and isinstance(rnn, nn.LSTM)
        and x.device.type == "cpu"
        and torch.is_grad_enabled()
        and torch.is_autocast_enabled("cpu")
        and torch.get_autocast_dtype("cpu") == torch.bfloat16
    )


def layer_weights(rnn: nn.RNNBase, layer: int, reverse: bool = False) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(w_ih, w_hh, b_ih, b_hh)`` of one layer and direction of an ``nn.LSTM`` / ``nn.GRU``."""
    suffix = f"_l{layer}" + ("_reverse" if reverse else "")
    return tuple(getattr(rnn, name + suffix) for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))


def run_fused(rnn: nn.LSTM, x: Tensor, state: tuple[Tensor, Tensor] | None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """A unidirectional, batch-first ``nn.LSTM`` over ``x [B, T, I]`` with :func:`fused_lstm`, layer by layer
    (dropout between layers as ``nn.LSTM`` applies it) -> ``(y [B, T, H], (h [L, B, H], c [L, B, H]))``,
    the same contract as ``rnn(x, state)``."""
    hs, cs = [], []
    for layer in range(rnn.num_layers):
        layer_state = None if state is None else (state[0][layer], state[1][layer])
        x, (h, c) = fused_lstm(x, layer_state, *layer_weights(rnn, layer))
        hs.append(h)
        cs.append(c)
        if layer < rnn.num_layers - 1:
            x = nn.functional.dropout(x, rnn.dropout, rnn.training)
    return x, (torch.stack(hs), torch.stack(cs))
