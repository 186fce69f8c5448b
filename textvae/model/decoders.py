"""Autoregressive decoders conditioned on a latent code.

Every decoder implements :class:`textvae.model.base.Decoder`: ``forward`` turns input ids (and a latent ``z``) into hidden
states plus a recurrent state/cache for incremental decoding, and ``project`` turns hidden states into
vocabulary logits. Keeping the two apart lets the loss project only the real (non-padding) positions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from textvae.errors import ConfigError
from textvae.model.base import Decoder, build_head, rename_legacy_head_keys
from textvae.model.fused_rnn import fused_applies, run_fused

if TYPE_CHECKING:
    from textvae.config import ModelConfig


class RNNDecoder(Decoder):
    """LSTM/GRU decoder. ``z`` initialises the hidden state (``init``), is concatenated to every input
    embedding (``concat``), or both: concatenation keeps the latent visible at every step, which makes it
    harder for a strong decoder to ignore it (one cause of posterior collapse)."""

    def __init__(self, cfg: ModelConfig, latent_size: int) -> None:
        """Built from ``cfg.decoder`` (``lstm`` | ``gru``), ``vocab_size``, ``embedding_size``, ``hidden_size``,
        ``decoder_layers``, ``z_conditioning``, ``tie_embeddings``, ``adaptive_softmax``, ``dropout`` and ``pad_id``;
        ``latent_size`` is the width of the conditioning code (z, then the label embedding; 0 for none)."""
        super().__init__()
        cell, vocab_size, embedding_size = cfg.decoder, cfg.vocab_size, cfg.embedding_size
        hidden_size, num_layers, dropout = cfg.hidden_size, cfg.decoder_layers, cfg.dropout
        self.cell = cell
        self.vocab_size = vocab_size
        self.num_layers = num_layers
        self.hidden_size = hidden_size
        self.latent_size = latent_size
        self.z_init = latent_size > 0 and cfg.z_conditioning in ("init", "both")
        self.z_concat = latent_size > 0 and cfg.z_conditioning in ("concat", "both")
        self.embedding = nn.Embedding(vocab_size, embedding_size, padding_idx=cfg.pad_id)
        self.dropout = nn.Dropout(dropout)
        rnn_cls = {"lstm": nn.LSTM, "gru": nn.GRU}[cell]
        in_size = embedding_size + (latent_size if self.z_concat else 0)
        self.rnn = rnn_cls(
            in_size,
            hidden_size,
            num_layers=num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        n_states = 2 if cell == "lstm" else 1
        self.z_to_state = nn.Linear(latent_size, n_states * num_layers * hidden_size) if self.z_init else None
        self.fused_rnn = cfg.fused_rnn
        self.head = build_head(cfg, hidden_size)

    def initial_state(self, z: Tensor | None, batch_size: int) -> Any:
        if self.z_to_state is None or z is None:
            return None  # zeros, created by the RNN itself
        s = torch.tanh(self.z_to_state(z))  # [B, n_states * L * H]
        s = s.view(z.shape[0], -1, self.num_layers, self.hidden_size).permute(1, 2, 0, 3).contiguous()
        return (s[0], s[1]) if self.cell == "lstm" else s[0]

    def forward(self, input_ids: Tensor, z: Tensor | None, state: Any = None) -> tuple[Tensor, Any]:
        emb = self.dropout(self.embedding(input_ids))
        if self.z_concat and z is not None:
            emb = torch.cat([emb, z.unsqueeze(1).expand(-1, emb.shape[1], -1).to(emb.dtype)], dim=-1)
        if state is None:
            state = self.initial_state(z, input_ids.shape[0])
        if fused_applies(self.rnn, emb, self.fused_rnn):
            out, state = run_fused(self.rnn, emb, state)
        else:
            out, state = self.rnn(emb, state)
        return self.dropout(out), state

    def project(self, hidden: Tensor) -> Tensor:
        return self.head(hidden, self.embedding.weight)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # noqa: ANN001 (torch's signature)
        rename_legacy_head_keys(state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def reorder_state(self, state: Any, index: Tensor) -> Any:
        if state is None:
            return None
        if isinstance(state, tuple):
            return tuple(s.index_select(1, index) for s in state)
        return state.index_select(1, index)


def build_decoder(cfg: ModelConfig, hf_config: Any = None) -> Decoder:
    """The decoder named by ``cfg.decoder``. Its conditioning code is z (``use_latent``) followed by the
    label embedding (``conditional``); with neither it is an unconditioned language model. ``hf_config``: a
    saved pretrained backbone's 🤗 config, to rebuild it without downloading."""
    latent = (cfg.latent_size if cfg.use_latent else 0) + (cfg.label_embedding_size if cfg.conditional else 0)
    if cfg.decoder in ("lstm", "gru"):
        return RNNDecoder(cfg, latent)
    if cfg.decoder == "transformer":
        from textvae.model.transformer import TransformerDecoder

        return TransformerDecoder(cfg, latent)
    if cfg.decoder == "pretrained":
        from textvae.model.pretrained import PretrainedDecoder

        if cfg.adaptive_softmax:
            raise ConfigError("model.adaptive_softmax is for decoders trained from scratch: a pretrained decoder "
                              "keeps its own output layer (set it to 0)")  # fmt: skip

        return PretrainedDecoder(
            cfg.decoder_pretrained, latent, cfg.vocab_size, cfg.z_conditioning, cfg.trust_remote_code, hf_config
        )
    raise ValueError(f"unknown decoder {cfg.decoder!r}")
