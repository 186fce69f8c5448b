"""The sentence VAE: encoder -> posterior q(z|x) -> autoregressive decoder, and its loss.

Reductions, stated once: reconstruction is the token cross-entropy **summed over a sentence's tokens**
(end token included) and **averaged over sentences**; KL is per dimension (closed-form for the default
Gaussian/standard normal pair, estimated otherwise: :mod:`textvae.model.latent`) and likewise averaged over
sentences. The loss is ``rec + beta * kl_term`` where ``kl_term`` applies free bits, plus
``mmd_weight * MMD`` (a batch-level term: the batch's codes against as many prior draws) when set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from textvae.config import DataConfig, ModelConfig
from textvae.data.batching import Batch
from textvae.errors import ConfigError
from textvae.model.decoders import build_decoder
from textvae.model.decoding import DecodingConfig, generate
from textvae.model.encoders import build_encoder
from textvae.model.latent import LatentMixin
from textvae.model.objective import kl_term, mmd, perturb_sentences, sum_per_row, word_dropout
from textvae.model.precision import autocast, autocast_dtype
from textvae.model.text_api import Posterior, TextMixin

if TYPE_CHECKING:
    from textvae.data.tokenizer import TextTokenizer


@dataclass
class VAEOutput:
    """What :meth:`TextVAE.forward` returns. Scalars are means over the batch's sentences, in nats."""

    loss: Tensor  # rec + beta * kl_term (the quantity to minimise)
    rec: Tensor  # reconstruction NLL per sentence (sum over tokens), mean over sentences
    kl: Tensor  # KL(q(z|x) || p(z)) per sentence, mean over sentences (no free bits)
    kl_per_dim: Tensor  # [Z] KL per dimension, mean over sentences (see LatentMixin.kl_terms)
    rec_per_sentence: Tensor  # [B]
    kl_per_sentence: Tensor  # [B]
    num_tokens: int  # target tokens in the batch (end tokens included, padding excluded)
    mu: Tensor | None  # [B, Z]
    logvar: Tensor | None  # [B, Z]
    z: Tensor | None  # [B, Z]
    mmd: Tensor | None = None  # MMD(z of the batch, as many prior draws), when model.mmd_weight > 0

    @property
    def neg_elbo(self) -> Tensor:
        """``rec + kl`` per sentence, mean over sentences (beta = 1, no free bits)."""
        return self.rec + self.kl

    @property
    def rec_per_token(self) -> Tensor:
        return self.rec_per_sentence.sum() / max(self.num_tokens, 1)


class TextVAE(LatentMixin, TextMixin, nn.Module):
    """A sentence VAE built from a :class:`ModelConfig` (and, for text in / text out, a tokenizer).

    Tensor verbs: :meth:`encode`, :meth:`reparameterize`, :meth:`decode`, :meth:`forward`,
    :meth:`generate`. Prior and posterior (:class:`~textvae.model.latent.LatentMixin`): :meth:`sample_prior`,
    :meth:`sample_posterior`, :meth:`log_prior`, :meth:`log_posterior`, :meth:`kl_terms`. Text verbs
    (:class:`~textvae.model.text_api.TextMixin`): :meth:`encode_text`, :meth:`generate_text`,
    :meth:`reconstruct`, :meth:`sample`, :meth:`batch_from_text`, :meth:`batch_from_ids`.
    """

    def __init__(
        self,
        config: ModelConfig,
        tokenizer: TextTokenizer | None = None,
        data_config: DataConfig | None = None,
        *,
        backbone_configs: dict[str, Any] | None = None,
    ) -> None:
        """``backbone_configs``: ``{"encoder": ..., "decoder": ...}`` 🤗 configs of pretrained backbones, given
        when loading a saved model so they are rebuilt from the model directory instead of downloaded."""
        super().__init__()
        if config.vocab_size <= 0:
            raise ValueError("ModelConfig.vocab_size must be set (from the tokenizer) before building a model")
        self.config = config
        self.tokenizer = tokenizer
        self.data_config = data_config or DataConfig()
        self._encoder_tokenizer: TextTokenizer | None = None
        self._encoder_frozen = False
        if config.conditional and config.num_labels < 1:
            raise ValueError("a conditional model needs ModelConfig.num_labels >= 1 (from the label column)")
        backbones = backbone_configs or {}
        self.encoder = build_encoder(config, backbones.get("encoder")) if config.use_latent else None
        self._check_encoder_vocabulary()
        label_size = config.label_embedding_size if config.conditional else 0
        self.label_embedding = nn.Embedding(config.num_labels, label_size) if config.conditional else None
        self.to_posterior = (
            nn.Linear(self.encoder.output_size + label_size, 2 * config.latent_size) if self.encoder else None
        )
        self.decoder = build_decoder(config, backbones.get("decoder"))
        self._build_latent()
        self.label_names: list[str] = []  # label id -> label string, set when trained on labelled data
        self.inference_dtype: torch.dtype | None = None  # see set_precision; not saved with the model

    def _check_encoder_vocabulary(self) -> None:
        """A pretrained encoder has its own vocabulary: it must not be fed ids of another tokenizer."""
        if not self.has_latent:
            return
        own = self.config.encoder == "pretrained"
        if self.data_config.encoder_tokenizer and not own:
            raise ConfigError(
                f"data.encoder_tokenizer is for model.encoder=pretrained; a {self.config.encoder} encoder learns "
                "its embeddings for the decoder's tokens (unset data.encoder_tokenizer)"
            )
        enc_vocab = getattr(self.encoder, "vocab_size", self.config.vocab_size)
        if own and not self.data_config.encoder_tokenizer and self.config.vocab_size > enc_vocab:
            raise ConfigError(
                f"the pretrained encoder knows {enc_vocab} tokens but the tokenizer has {self.config.vocab_size}: "
                "set data.encoder_tokenizer to the encoder's own tokenizer (usually model.encoder_pretrained)"
            )

    @property
    def encoder_tokenizer(self) -> TextTokenizer | None:
        """The encoder's own tokenizer (``data.encoder_tokenizer``), or None when it reads the decoder's ids.
        Loaded from the config on first use unless set (a saved model sets it from its directory)."""
        if self._encoder_tokenizer is None and self.data_config.encoder_tokenizer:
            from textvae.data.dataset import load_encoder_tokenizer

            self._encoder_tokenizer = load_encoder_tokenizer(self.data_config)
        return self._encoder_tokenizer

    @encoder_tokenizer.setter
    def encoder_tokenizer(self, tokenizer: TextTokenizer | None) -> None:
        self._encoder_tokenizer = tokenizer

    def freeze_encoder(self, frozen: bool) -> None:
        """Stop (or resume) training the encoder's weights; the posterior head keeps training. Frozen weights
        get no gradient, so the optimizer skips them (AdamW leaves parameters without a gradient alone)."""
        if self.has_latent and frozen != self._encoder_frozen:
            self.encoder.requires_grad_(not frozen)
            self._encoder_frozen = frozen

    def apply_freeze_schedule(self, step: int) -> None:
        """Call before each optimizer step ``step`` (0-based): the encoder is frozen while
        ``step < model.freeze_encoder_steps``. A pure function of the step, so resuming reproduces it."""
        self.freeze_encoder(step < self.config.freeze_encoder_steps)

    def set_precision(self, precision: str = "auto") -> torch.dtype | None:
        """The matrix products' precision in :meth:`encode`, :meth:`sentence_nll` (hence every likelihood)
        and :meth:`generate`: ``float32``, ``bfloat16`` (autocast: weights stay float32, products run in
        bf16, losses and log-probabilities are summed in float32), or ``auto`` = bf16 where the device has
        native bf16 units, else float32. Returns the autocast dtype (None: float32). Set it after moving
        the model to its device. Training sets its own (``train.precision``)."""
        c = self.config
        recurrent = bool({c.encoder, c.decoder} & {"lstm", "gru"})
        self.inference_dtype = autocast_dtype(precision, self.device, recurrent=recurrent, name="precision")
        return self.inference_dtype

    # -- tensor verbs ------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def has_latent(self) -> bool:
        """False for a plain language model (``model.use_latent=false``): no encoder, no z."""
        return self.encoder is not None

    def _labels(self, labels: Tensor | None) -> Tensor | None:
        """Label embeddings ``[B, L]`` for a conditional model (None otherwise)."""
        if self.label_embedding is None:
            return None
        if labels is None:
            raise ValueError("this is a conditional model: pass the label of each sentence")
        return self.label_embedding(labels)

    def encode(self, input_ids: Tensor, lengths: Tensor, labels: Tensor | None = None) -> Posterior:
        """``input_ids [B, T]``, ``lengths [B]`` (``labels [B]`` for a conditional model) ->
        ``Posterior(mu [B, Z], logvar [B, Z])``."""
        if not self.has_latent:
            raise RuntimeError("this model has no latent (model.use_latent=false): it is a language model")
        with autocast(input_ids.device, self.inference_dtype):
            h = self.encoder(input_ids, lengths)
            e = self._labels(labels)
            if e is not None:
                h = torch.cat([h, e.to(h.dtype)], dim=-1)
            mu, logvar = self.to_posterior(h).float().chunk(2, dim=-1)
        return Posterior(*self.posterior_from_head(mu, logvar))

    def encode_batch(self, batch: Batch) -> Posterior:
        """:meth:`encode` of a batch, reading the encoder's own ids when the batch carries them."""
        ids, lengths = batch.encoder_inputs
        return self.encode(ids, lengths, batch.labels)

    def _noisy_encoder_inputs(self, batch: Batch) -> tuple[Tensor, Tensor]:
        """What the encoder reads in :meth:`forward`: the batch's encoder inputs, perturbed in training mode
        when ``model.encoder_word_drop`` / ``encoder_word_substitute`` / ``encoder_shuffle`` are set (the
        decoder still reconstructs the clean sentence: a denoising autoencoder)."""
        ids, lengths = batch.encoder_inputs
        c = self.config
        if not self.training or not (c.encoder_word_drop or c.encoder_word_substitute or c.encoder_shuffle):
            return ids, lengths
        own = batch.encoder_input_ids is not None and self.encoder_tokenizer is not None
        tok = self.encoder_tokenizer if own else None
        specials = (tok.pad_id, tok.bos_id, tok.eos_id, tok.unk_id) if tok else (c.pad_id, c.bos_id, c.eos_id, c.unk_id)
        vocab = (max(specials) + 1, tok.vocab_size if tok else c.vocab_size)
        return perturb_sentences(
            ids,
            lengths,
            drop=c.encoder_word_drop,
            substitute=c.encoder_word_substitute if vocab[1] > vocab[0] else 0.0,
            shuffle=c.encoder_shuffle,
            vocab=vocab,
            pad_id=specials[0],
        )

    def decoder_code(self, z: Tensor | None, labels: Tensor | None = None) -> Tensor | None:
        """What the decoder is conditioned on: ``decoder_space(z) [B, Z]``, then the label embedding for a
        conditional model -> ``[B, Z (+ L)]``, or None for an unconditioned language model."""
        if z is not None:
            z = self.decoder_space(z)
        e = self._labels(labels)
        if e is None:
            return z
        return e if z is None else torch.cat([z, e.to(z.dtype)], dim=-1)

    def reparameterize(self, mu: Tensor, logvar: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """A reparameterized draw from q(z|x) of the model's posterior family, ``eps ~ N(0, I)`` drawn here:
        ``[B, Z]`` -> ``[B, Z]``, differentiable in mu, logvar (Gaussian: ``mu + sigma * eps``; see
        :meth:`sample_posterior` to pass the noise)."""
        eps = torch.randn(mu.shape, device=mu.device, dtype=mu.dtype, generator=generator)
        return self.sample_posterior(mu, logvar, eps)

    def decode(
        self, input_ids: Tensor, z: Tensor | None, labels: Tensor | None = None, state=None
    ) -> tuple[Tensor, object]:
        """Teacher-forced decoder pass: ``input_ids [B, T]`` -> ``(hidden [B, T, H], state)``."""
        return self.decoder(input_ids, self.decoder_code(z, labels), state)

    def sentence_nll(self, input_ids: Tensor, lengths: Tensor, code: Tensor | None) -> tuple[Tensor, int]:
        """``-log p(x | code)`` per sentence, teacher-forced: ``[B]`` nats (sum over tokens, end token
        included), and the number of target tokens. ``code`` comes from :meth:`decoder_code`. Word
        dropout applies in training mode only."""
        width = int(lengths.max())
        ids = input_ids[:, :width]  # a sub-batch may be narrower than its padding: skip pure-pad columns
        dec_in = ids[:, :-1]
        if self.training:
            dec_in = word_dropout(dec_in, lengths, self.config.word_dropout, self.config.unk_id)
        mask = torch.arange(dec_in.shape[1], device=ids.device).unsqueeze(0) < (lengths - 1).unsqueeze(1)
        with autocast(ids.device, self.inference_dtype):
            hidden, _ = self.decoder(dec_in, code)
            if not self.config.skip_padding:  # naive baseline: every position, padding included, is projected
                nll = self.decoder.token_nll(hidden.flatten(0, 1), ids[:, 1:].flatten())
                return (nll.view(mask.shape) * mask).sum(1), int(mask.sum())
            # Project only real positions: padding never reaches the (vocabulary-sized) output layer.
            rows = mask.nonzero(as_tuple=True)[0]
            nll = self.decoder.token_nll(hidden[mask], ids[:, 1:][mask])
        return sum_per_row(nll, rows, ids.shape[0]), int(rows.numel())

    def forward(
        self,
        batch: Batch,
        beta: float = 1.0,
        *,
        sample: bool = True,
        generator: torch.Generator | None = None,
        eps: Tensor | None = None,
    ) -> VAEOutput:
        """Loss and diagnostics for a batch. ``sample=False`` decodes from the posterior mean (an estimated KL
        is then taken at the mean too, so it is biased: use it for reconstruction figures); ``eps [B, Z]``
        supplies the reparameterization noise instead of drawing it (data-parallel ranks share one draw)."""
        ids, lengths, labels = batch.input_ids, batch.lengths, batch.labels
        mu = logvar = z = None
        if self.has_latent:
            mu, logvar = self.encode(*self._noisy_encoder_inputs(batch), labels)
            if not sample:
                z = mu
            elif eps is not None:
                z = self.sample_posterior(mu, logvar, eps)
            else:
                z = self.reparameterize(mu, logvar, generator)
            kl_parts = self.loss_kl_terms(mu, logvar, z)
            kl_bz = kl_parts.shared()  # the split the records show; its terms sum to the KL
        else:
            kl_bz = ids.new_zeros((ids.shape[0], 0), dtype=torch.float)
        rec_b, num_tokens = self.sentence_nll(ids, lengths, self.decoder_code(z, labels))
        kl_b = kl_bz.sum(dim=-1)
        rec = rec_b.mean()
        kl = kl_b.mean()
        loss = rec
        divergence = None
        if self.has_latent:
            # Free bits clamp the per-coordinate part; the learned mixture's coupling is never clamped (see
            # LatentMixin.loss_kl_terms). Without free bits this is rec + beta * KL.
            clamped = kl_term(kl_parts.per_dim, self.free_bits_floor, self.config.free_bits_mode)
            loss = rec + beta * (clamped + kl_parts.coupling.mean()) + kl_parts.prior_fit
            if self.config.mmd_weight > 0 and z.shape[0] >= 2:
                # The KL keeps each q(z|x) near the prior; this keeps their mixture (what p(z) draws
                # should look like) on it too. Not annealed with beta, as in InfoVAE; large weights
                # collapse the code (measured in docs/GENERATION.md).
                prior = self.sample_prior(z.shape[0], generator, in_decoder_space=True).to(z.dtype)
                divergence = mmd(self.decoder_space(z), prior)
                loss = loss + self.config.mmd_weight * divergence
        return VAEOutput(
            loss=loss,
            rec=rec,
            kl=kl,
            kl_per_dim=kl_bz.mean(dim=0),
            rec_per_sentence=rec_b,
            kl_per_sentence=kl_b,
            num_tokens=num_tokens,
            mu=mu,
            logvar=logvar,
            z=z,
            mmd=divergence,
        )

    def generate(
        self,
        z: Tensor | None = None,
        num: int | None = None,
        decoding: DecodingConfig | None = None,
        generator: torch.Generator | None = None,
        labels: Tensor | None = None,
    ) -> list[list[int]]:
        """Token ids (no ``<s>``/``</s>``) decoded from ``z [N, Z]`` (or ``num`` sentences for a language
        model); ``labels [N]`` for a conditional model."""
        if z is None and self.has_latent:
            raise ValueError("pass z (e.g. from sample_prior) to generate from a VAE")
        n = z.shape[0] if z is not None else (labels.shape[0] if labels is not None else (num or 1))
        c = self.config
        code = self.decoder_code(z, labels)
        with autocast(self.device, self.inference_dtype):
            return generate(self.decoder, code, n, c.bos_id, c.eos_id, decoding, generator, unk_id=c.unk_id)

    # -- persistence -------------------------------------------------------------------------------
    def save_pretrained(self, directory, extra: dict | None = None) -> None:
        """Write ``config.json``, ``model.safetensors`` and the tokenizer's files into ``directory``."""
        from textvae.model.persistence import save_model_dir

        save_model_dir(self, directory, extra)

    @classmethod
    def from_pretrained(
        cls,
        directory,
        device: str | torch.device = "cpu",
        *,
        trust_remote_code: bool = False,
        revision: str | None = None,
        cache_dir: str | None = None,
        local_files_only: bool = False,
        token: str | bool | None = None,
    ) -> TextVAE:
        """Rebuild a model from a directory written by :meth:`save_pretrained` (or a run directory), or from
        a Hugging Face Hub id ``"user/name"`` (downloaded into the Hub cache; ``revision`` is a branch, tag or
        commit, ``cache_dir`` the cache folder, ``local_files_only`` (or ``HF_HUB_OFFLINE=1``) never goes
        online). ``trust_remote_code=True`` lets a pretrained backbone's own code run: only for directories
        you trust (the flag saved inside the directory is never used for this)."""
        from textvae.hub import resolve_pretrained
        from textvae.model.persistence import load_model_dir

        local = resolve_pretrained(
            directory, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only, token=token
        )
        return load_model_dir(cls, local, device, trust_remote_code=trust_remote_code)

    def push_to_hub(
        self,
        repo_id: str,
        *,
        private: bool | None = None,
        token: str | bool | None = None,
        revision: str | None = None,
        commit_message: str = "Upload textvae model",
    ) -> str:
        """Upload this model (the files :meth:`save_pretrained` writes) and a generated model card to the Hub
        repository ``repo_id`` (created if needed). Returns the commit URL. To include a run's validation
        figures in the card, push the run's directory instead: :func:`textvae.hub.push_model_dir`."""
        from textvae.hub import push_to_hub

        return push_to_hub(
            self, repo_id, private=private, token=token, revision=revision, commit_message=commit_message
        )
