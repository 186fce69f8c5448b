"""An output layer that spends little on rare words: the adaptive softmax (Grave et al. 2017, "Efficient
softmax approximation for GPUs"), with one tail cluster.

The vocabulary's first ``head_size`` ids -- the frequent tokens, since word-level vocabularies number
tokens by frequency (BPE and unigram ones roughly so) -- share a full-width softmax with one extra entry,
"a rarer token". The other ids form a tail whose softmax reads a projection of the hidden state to
``hidden_size // 4`` features. In training the tail runs only for the positions whose target is in it
(about 6% of Yelp's tokens with a head of 2,000), so the output layer's cost falls from ``V`` to about
``head_size`` columns per token. It is still one normalised distribution over the whole vocabulary::

    log p(w) = log softmax(head)[w]                                        (w <  head_size)
    log p(w) = log softmax(head)[tail] + log softmax(tail(hidden))[w - head_size]   (w >= head_size)

so likelihoods, perplexities and ELBOs stay exact; only the model family changes (rare tokens get a
narrower representation).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: The tail's projection is ``hidden_size // TAIL_DIVISOR`` wide (Grave et al. use 4 per cluster).
TAIL_DIVISOR = 4


class AdaptiveHead(nn.Module):
    """Hidden states -> log-probabilities over ``vocab_size`` tokens, the first ``head_size`` ids in the head.

    ``forward`` returns the full ``[..., V]`` log-probabilities (for decoding, where every token's score is
    needed); :meth:`token_nll` scores given targets without building them (for training and evaluation).
    """

    def __init__(self, hidden_size: int, vocab_size: int, head_size: int) -> None:
        super().__init__()
        if not 0 < head_size < vocab_size:
            raise ValueError(f"the head must hold between 1 and {vocab_size - 1} tokens; got {head_size}")
        self.head_size = head_size
        self.head = nn.Linear(hidden_size, head_size + 1)  # the last entry: "a tail token"
        width = max(1, hidden_size // TAIL_DIVISOR)
        self.tail = nn.Sequential(nn.Linear(hidden_size, width, bias=False), nn.Linear(width, vocab_size - head_size))

    def forward(self, hidden: Tensor, embedding_weight: Tensor | None = None) -> Tensor:
        """``hidden [..., H]`` -> log-probabilities ``[..., V]`` (float32, a fresh tensor). They are already
        normalised, so code that treats them as logits (softmax, temperature, top-k) gets the same
        distribution. ``embedding_weight`` is accepted and ignored: the adaptive head is never tied."""
        head = self.head(hidden).float().log_softmax(dim=-1)
        tail = self.tail(hidden).float().log_softmax(dim=-1) + head[..., -1:]
        return torch.cat([head[..., :-1], tail], dim=-1)

    def token_nll(self, hidden: Tensor, targets: Tensor) -> Tensor:
        """``-log p(target)`` per position: ``hidden [N, H]``, ``targets [N]`` -> ``[N]`` nats (float32).
        Positions whose target is frequent never touch the tail."""
        in_tail = targets >= self.head_size
        nll = F.cross_entropy(self.head(hidden).float(), targets.clamp(max=self.head_size), reduction="none")
        rows = in_tail.nonzero().squeeze(1)
        if rows.numel() == 0:
            return nll
        tail = self.tail(hidden.index_select(0, rows)).float()
        return nll.index_add(0, rows, F.cross_entropy(tail, targets[rows] - self.head_size, reduction="none"))
