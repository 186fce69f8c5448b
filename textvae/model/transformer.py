"""Transformers trained from scratch: a pre-LayerNorm encoder and a causal decoder with a key/value cache.

Both share :class:`Block` (pre-LayerNorm self-attention + feed-forward, attention through
``scaled_dot_product_attention``). Token embeddings of width ``embedding_size`` are scaled to unit RMS and
projected to the model width ``hidden_size`` when the two differ, then positions (learned or sinusoidal) are
added.

The decoder sees z in two ways, chosen by ``model.z_conditioning``:

* ``init`` -- a **memory**: a linear map of z gives every layer one extra key/value slot in front of the
  tokens, which every position attends to (Optimus' "memory" injection). It lives in the key/value cache,
  so incremental decoding pays for it once;
* ``concat`` -- a linear map of z is **added** to every input embedding (the Transformer analogue of the
  RNN's concatenation: z reaches every position directly);
* ``both`` -- both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from textvae.model.base import Decoder, Encoder, build_head, rename_legacy_head_keys

if TYPE_CHECKING:
    from textvae.config import ModelConfig


def sinusoidal_positions(positions: Tensor, dim: int) -> Tensor:
    """Vaswani et al.'s fixed encodings: ``positions [T]`` long -> ``[T, dim]`` float (sin on even, cos on
    odd columns). Computed on the fly, so any position works."""
    half = torch.arange(0, dim, 2, device=positions.device, dtype=torch.float)
    freq = torch.exp(-math.log(10000.0) * half / dim)  # [ceil(dim / 2)]
    angles = positions.float().unsqueeze(1) * freq  # [T, ceil(dim / 2)]
    out = torch.zeros(positions.shape[0], dim, device=positions.device)
    out[:, 0::2] = angles.sin()
    out[:, 1::2] = angles.cos()[:, : dim // 2]
    return out


class TokenInput(nn.Module):
    """Token ids -> ``[B, T, hidden_size]`` input vectors: scaled embedding (+ projection) + positions."""

    @classmethod
    def from_config(cls, cfg: ModelConfig) -> TokenInput:
        return cls(cfg.vocab_size, cfg.embedding_size, cfg.hidden_size, cfg.positions, cfg.max_positions, cfg.pad_id)

    def __init__(
        self, vocab_size: int, embedding_size: int, hidden_size: int, positions: str, max_positions: int, pad_id: int
    ) -> None:
        super().__init__()
        if positions not in ("learned", "sinusoidal"):
            raise ValueError(f"unknown positions {positions!r}; use learned or sinusoidal")
        self.embedding = nn.Embedding(vocab_size, embedding_size, padding_idx=pad_id)
        # Unit-RMS token vectors (N(0, 1/E) times sqrt(E)), so they are on the positions' scale.
        nn.init.normal_(self.embedding.weight, std=embedding_size**-0.5)
        with torch.no_grad():
            self.embedding.weight[pad_id].zero_()
        self.scale = math.sqrt(embedding_size)
        self.proj = nn.Linear(embedding_size, hidden_size, bias=False) if embedding_size != hidden_size else None
        self.kind = positions
        self.max_positions = max_positions
        self.hidden_size = hidden_size
        self.positions = nn.Embedding(max_positions, hidden_size) if positions == "learned" else None

    def forward(self, input_ids: Tensor, start: int = 0) -> Tensor:
        """``input_ids [B, T]`` at positions ``start .. start + T - 1`` -> ``[B, T, hidden_size]``."""
        return self.from_embeddings(self.embedding(input_ids), start)

    def from_embeddings(self, embeddings: Tensor, start: int = 0) -> Tensor:
        """Token vectors ``[B, T, embedding_size]`` (rows of the table, or VampPrior's pseudo-inputs) ->
        ``[B, T, hidden_size]``, scaled and projected as token ids are, plus positions."""
        end = start + embeddings.shape[1]
        if self.positions is not None and end > self.max_positions:
            raise ValueError(f"a sequence of {end} tokens exceeds model.max_positions={self.max_positions}")
        x = embeddings * self.scale
        if self.proj is not None:
            x = self.proj(x)
        pos = torch.arange(start, end, device=embeddings.device)
        p = self.positions(pos) if self.positions is not None else sinusoidal_positions(pos, self.hidden_size)
        return x + p.to(x.dtype)


class SelfAttention(nn.Module):
    """Multi-head self-attention whose keys/values may be preceded by cached ones (``past``)."""

    def __init__(self, hidden_size: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        if hidden_size % num_heads:
            raise ValueError(f"model.hidden_size={hidden_size} must be divisible by model.num_heads={num_heads}")
        self.num_heads = num_heads
        self.qkv = nn.Linear(hidden_size, 3 * hidden_size)
        self.out = nn.Linear(hidden_size, hidden_size)
        self.dropout = dropout

    def forward(
        self, x: Tensor, mask: Tensor | None, past: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """``x [B, T, D]``; ``mask`` bool, True = may attend, broadcastable to ``[B, heads, T, S]``; ``past``:
        keys and values ``[B, heads, P, D / heads]`` -> (``[B, T, D]``, keys and values ``[B, heads, S, .]``)
        with ``S = P + T``."""
        B, T, D = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.num_heads, D // self.num_heads).permute(2, 0, 3, 1, 4)
        if past is not None:
            k = torch.cat([past[0], k], dim=2)
            v = torch.cat([past[1], v], dim=2)
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)  # [B, heads, T, D / heads]
        return self.out(y.transpose(1, 2).reshape(B, T, D)), (k, v)


class Block(nn.Module):
    """Pre-LayerNorm Transformer block: ``x + attn(ln(x))`` then ``x + ffn(ln(x))``. Normalising the branch
    inputs (not the residual stream) keeps training stable without learning-rate warm-up tricks."""

    def __init__(self, hidden_size: int, num_heads: int, ffn_size: int, dropout: float) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(hidden_size)
        self.attn = SelfAttention(hidden_size, num_heads, dropout)
        self.ln2 = nn.LayerNorm(hidden_size)
        self.ffn = nn.Sequential(nn.Linear(hidden_size, ffn_size), nn.GELU(), nn.Linear(ffn_size, hidden_size))
        self.dropout = nn.Dropout(dropout)

    def forward(
        self, x: Tensor, mask: Tensor | None, past: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        a, kv = self.attn(self.ln1(x), mask, past)
        x = x + self.dropout(a)
        return x + self.dropout(self.ffn(self.ln2(x))), kv


def _blocks(cfg: ModelConfig, num_layers: int) -> nn.ModuleList:
    """``num_layers`` blocks of ``cfg``'s width, heads and feed-forward size (default 4 x the width)."""
    ffn = cfg.ffn_size or 4 * cfg.hidden_size
    return nn.ModuleList(Block(cfg.hidden_size, cfg.num_heads, ffn, cfg.dropout) for _ in range(num_layers))


def _init_linear(module: nn.Module) -> None:
    """GPT-2's initialisation for linear layers: N(0, 0.02) weights, zero biases."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class TransformerEncoder(Encoder):
    """Bidirectional Transformer; padding is masked out of every attention and out of the pooling.

    ``pooling="mean"`` averages the last layer over real tokens; ``"cls"`` takes position 0, the ``<s>``
    token, which then acts as a learned summary token (as BERT's ``[CLS]``).
    """

    def __init__(self, cfg: ModelConfig) -> None:
        """Built from ``cfg``'s sizes (``vocab_size``, ``embedding_size``, ``hidden_size``, ``encoder_layers``,
        ``num_heads``, ``ffn_size``), ``positions``, ``max_positions``, ``pooling``, ``dropout`` and ``pad_id``."""
        super().__init__()
        if cfg.pooling not in ("mean", "cls"):
            raise ValueError(f"unknown pooling {cfg.pooling!r}; use mean or cls")
        self.pooling = cfg.pooling
        self.inputs = TokenInput.from_config(cfg)
        self.dropout = nn.Dropout(cfg.dropout)
        self.blocks = _blocks(cfg, cfg.encoder_layers)
        self.norm = nn.LayerNorm(cfg.hidden_size)
        self.output_size = cfg.hidden_size
        _init_linear(self)

    def forward(self, input_ids: Tensor, lengths: Tensor) -> Tensor:
        """``input_ids [B, T]``, ``lengths [B]`` -> summary ``[B, hidden_size]``."""
        return self.forward_embeddings(self.inputs.embedding(input_ids), lengths)

    def input_embeddings(self) -> nn.Embedding:
        return self.inputs.embedding

    def forward_embeddings(self, embeddings: Tensor, lengths: Tensor) -> Tensor:
        real = torch.arange(embeddings.shape[1], device=embeddings.device).unsqueeze(0) < lengths.unsqueeze(1)
        mask = real[:, None, None, :]  # [B, 1, 1, T]: every query sees only real keys
        x = self.dropout(self.inputs.from_embeddings(embeddings))
        for block in self.blocks:
            x, _ = block(x, mask)
        x = self.norm(x)
        if self.pooling == "cls":
            return x[:, 0]
        w = real.unsqueeze(2).to(x.dtype)  # [B, T, 1]
        return (x * w).sum(dim=1) / w.sum(dim=1)


@dataclass
class KVCache:
    """Decoder state: per layer the keys and values ``[B, heads, S, D / heads]`` of everything attended to so far
    (the z memory slot, if any, then the tokens), and the number of tokens seen (the next token's position)."""

    layers: list[tuple[Tensor, Tensor]] | list[None]
    tokens: int


class TransformerDecoder(Decoder):
    """Causal Transformer conditioned on z as a memory slot and/or an added embedding (see the module docs).

    Teacher forcing and incremental decoding run the same code: ``forward`` appends the new tokens' keys and
    values to the cache it is given, so each generation step costs one position, not a re-run of the prefix.
    """

    def __init__(self, cfg: ModelConfig, latent_size: int) -> None:
        """Built like :class:`TransformerEncoder` (with ``decoder_layers``), plus ``z_conditioning`` and
        ``tie_embeddings`` and ``adaptive_softmax``; ``latent_size`` is the width of the conditioning code (0 for
        none)."""
        super().__init__()
        hidden_size, num_layers = cfg.hidden_size, cfg.decoder_layers
        self.vocab_size = cfg.vocab_size
        self.num_layers = num_layers
        self.num_heads = cfg.num_heads
        self.hidden_size = hidden_size
        use_memory = latent_size > 0 and cfg.z_conditioning in ("init", "both")
        use_embed = latent_size > 0 and cfg.z_conditioning in ("concat", "both")
        self.inputs = TokenInput.from_config(cfg)
        self.dropout = nn.Dropout(cfg.dropout)
        self.blocks = _blocks(cfg, num_layers)
        self.norm = nn.LayerNorm(hidden_size)
        self.z_memory = nn.Linear(latent_size, num_layers * 2 * hidden_size) if use_memory else None
        self.z_embed = nn.Linear(latent_size, hidden_size) if use_embed else None
        self.head = build_head(cfg, hidden_size)
        _init_linear(self)

    def initial_state(self, z: Tensor | None, batch_size: int) -> KVCache:
        """An empty cache, holding only the z memory slot of every layer when z conditions by memory."""
        if self.z_memory is None or z is None:
            return KVCache([None] * self.num_layers, 0)
        hd = self.hidden_size // self.num_heads
        m = self.z_memory(z).view(batch_size, self.num_layers, 2, self.num_heads, 1, hd)
        return KVCache([(m[:, i, 0], m[:, i, 1]) for i in range(self.num_layers)], 0)

    def forward(self, input_ids: Tensor, z: Tensor | None, state: KVCache | None = None) -> tuple[Tensor, KVCache]:
        """``input_ids [B, T]`` continuing ``state`` (None: from the start) -> (``hidden [B, T, H]``, state)."""
        B, T = input_ids.shape
        if state is None:
            state = self.initial_state(z, B)
        x = self.inputs(input_ids, state.tokens)
        if self.z_embed is not None and z is not None:
            x = x + self.z_embed(z).unsqueeze(1).to(x.dtype)
        x = self.dropout(x)
        first = state.layers[0]
        past = first[0].shape[2] if first is not None else 0
        # Query i sits at key position past + i and may see keys 0 .. past + i. A single new token sees
        # everything, so the common generation step needs no mask at all.
        mask = None
        if T > 1:
            mask = torch.ones(T, past + T, dtype=torch.bool, device=x.device).tril(diagonal=past)
        layers = []
        for block, kv in zip(self.blocks, state.layers):
            x, kv = block(x, mask, kv)
            layers.append(kv)
        return self.dropout(self.norm(x)), KVCache(layers, state.tokens + T)

    def project(self, hidden: Tensor) -> Tensor:
        return self.head(hidden, self.inputs.embedding.weight)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # noqa: ANN001 (torch's signature)
        rename_legacy_head_keys(state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def reorder_state(self, state: KVCache | None, index: Tensor) -> KVCache | None:
        if state is None:
            return None
        layers = [
            None if kv is None else (kv[0].index_select(0, index), kv[1].index_select(0, index)) for kv in state.layers
        ]
        return KVCache(layers, state.tokens)
