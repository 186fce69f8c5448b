"""Pretrained backbones through 🤗 ``transformers``: a BERT-like encoder and a GPT-2-like decoder (Optimus).

* :class:`PretrainedEncoder` -- ``AutoModel``; the last layer is pooled to the summary vector (mean over real
  tokens, or the first token, ``[CLS]``).
* :class:`PretrainedDecoder` -- ``AutoModelForCausalLM``; z enters as a key/value **memory** prefix that every
  layer attends to (a linear map of z per layer, written into the model's own key/value cache before the first
  token) and/or as an **added embedding** (a linear map of z added to every input embedding through
  ``inputs_embeds``), as ``model.z_conditioning`` says (``init`` / ``concat`` / ``both``). Generation runs
  through textvae's own strategies: the decoder state is the 🤗 cache plus a token count.

A backbone is loaded with ``from_pretrained`` (folder or hub name) only when a model is first built. A saved
textvae model stores each backbone's 🤗 config (``backbone_encoder/``, ``backbone_decoder/``) next to its
``model.safetensors``, and loading passes that config here (``hf_config``) so the backbone is rebuilt with
``from_config`` -- no download -- before our weights are loaded into it.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from textvae.errors import ConfigError
from textvae.model.base import Decoder, Encoder


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Hide transformers' load-time chatter (an unused pooler's "newly initialized" weights, progress bars)."""
    from transformers.utils import logging

    level, bars = logging.get_verbosity(), logging.is_progress_bar_enabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        logging.set_verbosity(level)
        if bars:
            logging.enable_progress_bar()


def load_backbone(role: str, source: str | None, hf_config: Any = None, trust_remote_code: bool = False) -> nn.Module:
    """``role`` ``encoder`` -> ``AutoModel``, ``decoder`` -> ``AutoModelForCausalLM``, in float32.

    With ``hf_config`` (a saved model's backbone config) the architecture is built from it with random weights,
    which the caller then overwrites; otherwise weights come from ``source`` (local folder or hub name).
    """
    from transformers import AutoModel, AutoModelForCausalLM

    auto = AutoModel if role == "encoder" else AutoModelForCausalLM
    with _quiet_transformers():
        if hf_config is not None:
            model = auto.from_config(hf_config, trust_remote_code=trust_remote_code)
        else:
            if not source:
                raise ConfigError(f"model.{role}=pretrained needs model.{role}_pretrained (a local folder or hub name)")
            try:
                model = auto.from_pretrained(source, trust_remote_code=trust_remote_code)
            except Exception as e:  # missing folder, offline hub, unknown architecture: the user's to fix
                reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                raise ConfigError(
                    f"could not load the pretrained {role} {source!r} ({reason}); give a local folder saved with "
                    "save_pretrained, or a hub name while online (set model.trust_remote_code=true only for a "
                    "model whose code you trust)"
                ) from None
    return model.float()  # some checkpoints load in half precision; the VAE trains in float32


class PretrainedEncoder(Encoder):
    """A BERT-like ``AutoModel`` pooled to ``[B, hidden]``: ``mean`` over real tokens or ``cls`` (position 0).

    Batches are framed ``<s> w1 .. wn </s>`` with the encoder tokenizer's own begin/end ids, which for a BERT
    tokenizer are ``[CLS]`` and ``[SEP]``: exactly the input BERT was trained on.
    """

    def __init__(
        self, source: str | None, pooling: str = "mean", trust_remote_code: bool = False, hf_config: Any = None
    ) -> None:
        super().__init__()
        if pooling not in ("mean", "cls"):
            raise ValueError(f"unknown pooling {pooling!r}; use mean or cls")
        self.backbone = load_backbone("encoder", source, hf_config, trust_remote_code)
        if isinstance(getattr(self.backbone, "pooler", None), nn.Module):
            # BERT's pooler (its next-sentence head) is never used here: dropped, it is neither saved nor left
            # without gradients (which DistributedDataParallel refuses).
            self.backbone.pooler = None
        self.pooling = pooling
        self.output_size = int(self.backbone.config.hidden_size)
        self.vocab_size = int(self.backbone.get_input_embeddings().num_embeddings)

    @property
    def hf_config(self) -> Any:
        """The backbone's 🤗 config (saved with the model, so loading needs no download)."""
        return self.backbone.config

    def forward(self, input_ids: Tensor, lengths: Tensor) -> Tensor:
        """``input_ids [B, T]``, ``lengths [B]`` -> ``[B, hidden]``; padding is masked out of attention and pooling."""
        return self._summary(lengths, input_ids=input_ids)

    def input_embeddings(self) -> nn.Embedding:
        return self.backbone.get_input_embeddings()

    def forward_embeddings(self, embeddings: Tensor, lengths: Tensor) -> Tensor:
        return self._summary(lengths, inputs_embeds=embeddings)

    def _summary(self, lengths: Tensor, **inputs: Tensor) -> Tensor:
        width = next(iter(inputs.values())).shape[1]
        real = torch.arange(width, device=lengths.device).unsqueeze(0) < lengths.unsqueeze(1)
        h = self.backbone(**inputs, attention_mask=real.long())[0]  # last hidden state [B, T, H]
        if self.pooling == "cls":
            return h[:, 0]
        w = real.unsqueeze(2).to(h.dtype)
        return (h * w).sum(dim=1) / w.sum(dim=1)


@dataclass
class PretrainedState:
    """Decoder state: the 🤗 key/value cache (updated in place by each call; it holds the z memory slot first,
    if any) and the number of tokens seen, which is the next token's position id."""

    cache: Any
    tokens: int


class PretrainedDecoder(Decoder):
    """A GPT-2-like ``AutoModelForCausalLM`` conditioned on z (Optimus; see the module docs).

    ``project`` is the model's own output layer (``lm_head``, tied to the input embeddings for GPT-2). If the
    tokenizer's vocabulary size differs from the model's, the embeddings are resized to it.
    """

    def __init__(
        self,
        source: str | None,
        latent_size: int,
        vocab_size: int,
        z_conditioning: str = "both",
        trust_remote_code: bool = False,
        hf_config: Any = None,
    ) -> None:
        super().__init__()
        self.lm = load_backbone("decoder", source, hf_config, trust_remote_code)
        if self.lm.get_input_embeddings().num_embeddings != vocab_size:
            with _quiet_transformers():
                self.lm.resize_token_embeddings(vocab_size)
        self.vocab_size = vocab_size
        c = self.lm.config
        c = c.get_text_config(decoder=True) if hasattr(c, "get_text_config") else c
        self.num_layers = int(c.num_hidden_layers)
        heads = int(c.num_attention_heads)
        self.kv_heads = int(getattr(c, "num_key_value_heads", None) or heads)  # grouped-query models cache fewer
        self.head_dim = int(getattr(c, "head_dim", None) or c.hidden_size // heads)
        use_memory = latent_size > 0 and z_conditioning in ("init", "both")
        use_embed = latent_size > 0 and z_conditioning in ("concat", "both")
        memory_size = self.num_layers * 2 * self.kv_heads * self.head_dim
        self.z_memory = nn.Linear(latent_size, memory_size) if use_memory else None
        self.z_embed = nn.Linear(latent_size, int(c.hidden_size)) if use_embed else None
        # transformers 5 renamed the forward argument past_key_values -> cache (the old name warns).
        params = inspect.signature(self.lm.base_model.forward).parameters
        self._cache_arg = "cache" if "cache" in params else "past_key_values"

    @property
    def hf_config(self) -> Any:
        return self.lm.config

    def initial_state(self, z: Tensor | None, batch_size: int) -> PretrainedState:
        """A fresh cache; with memory conditioning it already holds one key/value slot per layer made from z."""
        from transformers import DynamicCache

        cache = DynamicCache()
        if self.z_memory is not None and z is not None:
            m = self.z_memory(z).view(batch_size, self.num_layers, 2, self.kv_heads, 1, self.head_dim)
            for i in range(self.num_layers):
                cache.update(m[:, i, 0], m[:, i, 1], i)
        return PretrainedState(cache, 0)

    def forward(
        self, input_ids: Tensor, z: Tensor | None, state: PretrainedState | None = None
    ) -> tuple[Tensor, PretrainedState]:
        """``input_ids [B, T]`` continuing ``state`` (None: from the start) -> (``hidden [B, T, H]``, state)."""
        B, T = input_ids.shape
        if state is None:
            state = self.initial_state(z, B)
        x = self.lm.get_input_embeddings()(input_ids)
        if self.z_embed is not None and z is not None:
            x = x + self.z_embed(z).unsqueeze(1).to(x.dtype)
        # Explicit positions: the memory slot occupies a cache entry but no position, so tokens start at 0.
        pos = torch.arange(state.tokens, state.tokens + T, device=input_ids.device).unsqueeze(0).expand(B, -1)
        out = self.lm.base_model(inputs_embeds=x, position_ids=pos, use_cache=True, **{self._cache_arg: state.cache})
        return out[0], PretrainedState(state.cache, state.tokens + T)

    def project(self, hidden: Tensor) -> Tensor:
        return self.lm.get_output_embeddings()(hidden)

    def reorder_state(self, state: PretrainedState | None, index: Tensor) -> PretrainedState | None:
        if state is None:
            return None
        state.cache.reorder_cache(index)  # index_select on the batch axis of every layer, in place
        return PretrainedState(state.cache, state.tokens)
