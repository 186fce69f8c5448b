"""Decoding strategies for any :class:`~textvae.model.decoders.Decoder`: greedy, sampling (temperature,
top-k, nucleus). Batched; every sentence stops at the end token or at ``max_length`` tokens."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from textvae.model.decoders import Decoder

#: A hard ceiling on generated length, whatever the caller asks for (bounds time and memory).
MAX_GENERATION_LENGTH = 512


@dataclass
class DecodingConfig:
    """How to turn a latent code into tokens."""

    strategy: str = "greedy"  # greedy | sample
    temperature: float = 1.0
    top_k: int = 0  # 0: no top-k filtering
    top_p: float = 1.0  # 1.0: no nucleus filtering
    max_length: int = 50  # generated tokens, end token excluded

    def validate(self) -> DecodingConfig:
        if self.strategy not in ("greedy", "sample"):
            raise ValueError(f"unknown decoding strategy {self.strategy!r}; use greedy or sample")
        if self.temperature <= 0:
            raise ValueError("temperature must be > 0")
        if self.top_k < 0 or not 0 < self.top_p <= 1:
            raise ValueError("top_k must be >= 0 and top_p in (0, 1]")
        if not 1 <= self.max_length <= MAX_GENERATION_LENGTH:
            raise ValueError(f"max_length must be in [1, {MAX_GENERATION_LENGTH}]")
        return self


def filter_logits(logits: Tensor, top_k: int = 0, top_p: float = 1.0) -> Tensor:
    """Mask (to -inf) all but the ``top_k`` largest logits and the smallest set of tokens whose
    probability mass reaches ``top_p``. ``logits [B, V]`` -> ``[B, V]``; the best token always survives."""
    if top_k > 0 and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = sorted_logits.softmax(dim=-1)
        # A token is dropped when the mass *before* it already reaches top_p.
        drop_sorted = probs.cumsum(dim=-1) - probs >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


@torch.no_grad()
def generate(
    decoder: Decoder,
    z: Tensor | None,
    num: int,
    bos_id: int,
    eos_id: int,
    cfg: DecodingConfig | None = None,
    generator: torch.Generator | None = None,
) -> list[list[int]]:
    """Decode ``num`` sentences (``z [num, Z]`` or None for a language model) -> token ids without
    ``<s>``/``</s>``."""
    cfg = (cfg or DecodingConfig()).validate()
    device = next(decoder.parameters()).device
    tokens = torch.full((num, 1), bos_id, dtype=torch.long, device=device)
    finished = torch.zeros(num, dtype=torch.bool, device=device)
    out: list[Tensor] = []
    state = None
    for _ in range(cfg.max_length):
        hidden, state = decoder(tokens, z, state)
        logits = decoder.project(hidden[:, -1]).float()
        if cfg.strategy == "greedy":
            nxt = logits.argmax(dim=-1)
        else:
            logits = filter_logits(logits / cfg.temperature, cfg.top_k, cfg.top_p)
            nxt = torch.multinomial(logits.softmax(dim=-1), 1, generator=generator).squeeze(1)
        nxt = nxt.masked_fill(finished, eos_id)
        out.append(nxt)
        finished |= nxt == eos_id
        if bool(finished.all()):
            break
        tokens = nxt.unsqueeze(1)
    ids = torch.stack(out, dim=1).tolist() if out else [[] for _ in range(num)]
    return [row[: row.index(eos_id)] if eos_id in row else row for row in ids]
