"""The two interfaces every backbone honours, and the output layer the trained-from-scratch decoders share.

:class:`Encoder`: token ids -> one summary vector per sentence (the VAE maps it to the Gaussian's parameters,
so an encoder knows nothing about latents). :class:`Decoder`: token ids and a conditioning code -> hidden
states (plus a state to continue from), and hidden states -> vocabulary logits. Keeping the two decoder
steps apart lets the loss project only the real (non-padding) positions. Backbones live in
:mod:`textvae.model.encoders` / :mod:`textvae.model.decoders` (recurrent), :mod:`textvae.model.transformer`
and :mod:`textvae.model.pretrained`; :mod:`textvae.model.backbones` picks one from the config.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from textvae.errors import ConfigError
from textvae.model.adaptive_softmax import AdaptiveHead
from textvae.model.objective import token_nll

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

    def input_embeddings(self) -> nn.Embedding | None:
        """The token embedding table, for encoders that can also read vectors (:meth:`forward_embeddings`)."""
        return None

    def forward_embeddings(self, embeddings: Tensor, lengths: Tensor) -> Tensor:
        """The summary of sequences given as input vectors ``[B, T, E]`` (E = the embedding width) instead of
        ids: what VampPrior's pseudo-inputs go through. ``-> [B, output_size]``."""
        raise NotImplementedError(f"{type(self).__name__} cannot read embeddings")


class Decoder(nn.Module):
    """Base class for decoders.

    ``forward(input_ids [B, T], z [B, Z] | None, state=None) -> (hidden [B, T, H], state)``: with
    ``state=None`` decoding starts from the beginning; passing the returned state back with the next
    token(s) continues it, so generating ``T`` tokens costs ``T`` single-step calls.
    ``project(hidden [..., H]) -> logits [..., V]``.
    """

    vocab_size: int

    def forward(self, input_ids: Tensor, z: Tensor | None, state: Any = None) -> tuple[Tensor, Any]:
        raise NotImplementedError

    def project(self, hidden: Tensor) -> Tensor:
        raise NotImplementedError

    def token_nll(self, hidden: Tensor, targets: Tensor) -> Tensor:
        """``-log p(target)`` per position: ``hidden [N, H]``, ``targets [N]`` -> ``[N]`` nats (float32). An
        output layer that can score the targets alone (:class:`AdaptiveHead`) skips the full logits."""
        head = getattr(self, "head", None)
        if isinstance(head, AdaptiveHead):
            return head.token_nll(hidden, targets)
        return token_nll(self.project(hidden), targets)

    def reorder_state(self, state: Any, index: Tensor) -> Any:
        """Select/reorder batch entries of a state (beam search); ``index [B']`` long."""
        raise NotImplementedError


class OutputHead(nn.Module):
    """Hidden states ``[..., H]`` -> logits ``[..., V]``: a linear layer, or, tied (``tie=True``), a map into
    the embedding space followed by the input embedding matrix (passed at call time, so the matrix is stored
    once, by the embedding) and a free bias. Tying saves ``V x H`` parameters and often helps small corpora.
    """

    def __init__(self, hidden_size: int, vocab_size: int, embedding_size: int, tie: bool) -> None:
        super().__init__()
        if tie:
            self.to_embedding = nn.Linear(hidden_size, embedding_size, bias=False)
            self.out_bias = nn.Parameter(torch.zeros(vocab_size))
            self.output = None
        else:
            self.to_embedding = None
            self.output = nn.Linear(hidden_size, vocab_size)

    def forward(self, hidden: Tensor, embedding_weight: Tensor) -> Tensor:
        if self.output is not None:
            return self.output(hidden)
        return F.linear(self.to_embedding(hidden), embedding_weight, self.out_bias)


def build_head(cfg: ModelConfig, hidden_size: int) -> nn.Module:
    """The decoder's output layer: an :class:`AdaptiveHead` when ``cfg.adaptive_softmax`` is set and smaller
    than the vocabulary (so one config serves corpora of any size), else an :class:`OutputHead`."""
    if cfg.adaptive_head:
        if cfg.tie_embeddings:
            raise ConfigError("model.adaptive_softmax and model.tie_embeddings cannot be combined: set one to 0/false")
        return AdaptiveHead(hidden_size, cfg.vocab_size, cfg.adaptive_softmax)
    return OutputHead(hidden_size, cfg.vocab_size, cfg.embedding_size, cfg.tie_embeddings)


def rename_legacy_head_keys(state_dict: dict[str, Any], prefix: str) -> None:
    """Models saved before :class:`OutputHead` existed kept its parameters on the decoder itself
    (``output.*``, ``to_embedding.*``, ``out_bias``): move them under ``head.`` so those directories load."""
    for name in ("output.weight", "output.bias", "to_embedding.weight", "out_bias"):
        old, new = prefix + name, prefix + "head." + name
        if old in state_dict and new not in state_dict:
            state_dict[new] = state_dict.pop(old)
