"""Sentence encoders: token ids -> one summary vector per sentence.

Every encoder implements :class:`Encoder`; :func:`build_encoder` picks one from the model config.
The VAE maps the summary to the Gaussian's mean and log-variance, so an encoder knows nothing about
latents and new backbones (Transformer, pretrained) only have to honour this small interface.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

if TYPE_CHECKING:
    from textvae.config import ModelConfig


class Encoder(nn.Module):
    """Base class. ``output_size`` is the width of the summary vector."""

    output_size: int

    def forward(self, input_ids: Tensor, lengths: Tensor) -> Tensor:
        """``input_ids [B, T]`` long, ``lengths [B]`` long -> summary ``[B, output_size]`` float.

        Padding positions (beyond ``lengths``) must not change the result.
        """
        raise NotImplementedError


class RNNEncoder(Encoder):
    """(Bi)LSTM or GRU over packed sequences. The summary is the last layer's final hidden state(s)
    (``pooling="last"``, the literature's choice) or the mean / max of its outputs over real tokens, which
    weighs the middle of a sentence as much as its ends."""

    def __init__(
        self,
        cell: str,
        vocab_size: int,
        embedding_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bidirectional: bool = True,
        dropout: float = 0.0,
        pad_id: int = 0,
        pooling: str = "last",
        skip_padding: bool = True,
    ) -> None:
        super().__init__()
        if pooling not in ("last", "mean", "max"):
            raise ValueError(f"unknown RNN pooling {pooling!r}; use last, mean or max")
        self.pooling = pooling
        self.skip_padding = skip_padding
        rnn_cls = {"lstm": nn.LSTM, "gru": nn.GRU}[cell]
        self.embedding = nn.Embedding(vocab_size, embedding_size, padding_idx=pad_id)
        self.dropout = nn.Dropout(dropout)
        self.rnn = rnn_cls(
            embedding_size,
            hidden_size,
            num_layers=num_layers,
            batch_first=True,
            bidirectional=bidirectional,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.num_directions = 2 if bidirectional else 1
        self.output_size = hidden_size * self.num_directions

    def forward(self, input_ids: Tensor, lengths: Tensor) -> Tensor:
        emb = self.dropout(self.embedding(input_ids))
        if not self.skip_padding:
            return self._forward_padded(emb, lengths)
        # Packing skips padded steps entirely: cheaper, and the backward direction starts at the real end.
        packed = pack_padded_sequence(emb, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, h = self.rnn(packed)
        if self.pooling != "last":
            out, _ = pad_packed_sequence(out, batch_first=True)  # [B, T', dirs * H], T' = max(lengths)
            real = torch.arange(out.shape[1], device=out.device)[None, :] < lengths.to(out.device)[:, None]
            real = real.unsqueeze(-1)
            if self.pooling == "mean":
                return (out * real).sum(1) / real.sum(1).clamp_min(1)
            return out.masked_fill(~real, float("-inf")).amax(1)
        h_n = h[0] if isinstance(h, tuple) else h  # LSTM returns (h, c)
        last = h_n.view(-1, self.num_directions, h_n.shape[1], h_n.shape[2])[-1]  # [dirs, B, H]
        return torch.cat(list(last), dim=-1)

    def _forward_padded(self, emb: Tensor, lengths: Tensor) -> Tensor:
        """The naive baseline (``model.skip_padding=false``): the RNN runs over padding too. Forward
        summary at each sentence's last real token; the backward direction has read the padding first."""
        out, _ = self.rnn(emb)  # [B, T, dirs * H]
        real = torch.arange(out.shape[1], device=out.device)[None, :] < lengths.to(out.device)[:, None]
        if self.pooling == "mean":
            return (out * real.unsqueeze(-1)).sum(1) / real.sum(1, keepdim=True).clamp_min(1)
        if self.pooling == "max":
            return out.masked_fill(~real.unsqueeze(-1), float("-inf")).amax(1)
        h = out.shape[-1] // self.num_directions
        rows = torch.arange(out.shape[0], device=out.device)
        forward = out[rows, lengths.to(out.device) - 1, :h]
        return forward if self.num_directions == 1 else torch.cat([forward, out[:, 0, h:]], dim=-1)


def build_encoder(cfg: ModelConfig, hf_config: Any = None) -> Encoder:
    """The encoder named by ``cfg.encoder``. ``hf_config``: a saved pretrained backbone's 🤗 config, to rebuild
    it without downloading (see :mod:`textvae.model.pretrained`)."""
    if cfg.encoder in ("lstm", "gru"):
        return RNNEncoder(
            cfg.encoder,
            cfg.vocab_size,
            cfg.embedding_size,
            cfg.hidden_size,
            cfg.encoder_layers,
            cfg.bidirectional,
            cfg.dropout,
            cfg.pad_id,
            cfg.rnn_pooling,
            cfg.skip_padding,
        )
    if cfg.encoder == "transformer":
        from textvae.model.transformer import TransformerEncoder

        return TransformerEncoder(
            cfg.vocab_size,
            cfg.embedding_size,
            cfg.hidden_size,
            cfg.encoder_layers,
            cfg.num_heads,
            cfg.ffn_size or 4 * cfg.hidden_size,
            cfg.positions,
            cfg.max_positions,
            cfg.pooling,
            cfg.dropout,
            cfg.pad_id,
        )
    if cfg.encoder == "pretrained":
        from textvae.model.pretrained import PretrainedEncoder

        return PretrainedEncoder(cfg.encoder_pretrained, cfg.pooling, cfg.trust_remote_code, hf_config)
    raise ValueError(f"unknown encoder {cfg.encoder!r}")
