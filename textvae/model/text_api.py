"""Text in, text out: the one text-level layer of :class:`textvae.model.vae.TextVAE` (a mixin, as 🤗
transformers' ``GenerationMixin`` is), so notebooks, the inference helpers and the CLI share its checks.

Sentences are normalised as the training data was (:func:`textvae.data.text.normalize_text`) and capped at
``data.max_tokens``. Methods that encode text check it first (``strict=True``, the default): an empty
sentence, or one whose every token is ``<unk>``, would be encoded to a meaningless code without any sign of
trouble, so it is refused with a :class:`ParameterError` instead. Encoding goes in chunks of ``chunk_size``
sentences, which bounds memory for long lists. Errors name the Python parameters; the CLI respells them as
its flags.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

import torch
from torch import Tensor

from textvae.data.batching import Batch, TokenIds, collate
from textvae.data.text import normalize_text
from textvae.errors import ParameterError, TextVAEError
from textvae.model.decoding import DecodingConfig

if TYPE_CHECKING:
    from textvae.config import DataConfig, ModelConfig
    from textvae.data.tokenizer import TextTokenizer

#: Sentences encoded per forward pass by :meth:`TextMixin.encode_text` (bounds memory for long lists).
ENCODE_CHUNK = 512


class Posterior(NamedTuple):
    """Parameters of q(z|x): ``mu [B, Z]`` and ``logvar [B, Z]`` of the Gaussian (for ``posterior=iaf``, the
    Gaussian the flow starts from); for ``posterior=vmf``, the unit mean direction and ``-log kappa``."""

    mu: Tensor
    logvar: Tensor


class TextMixin:
    """Text-level verbs of a :class:`TextVAE`: :meth:`encode_text`, :meth:`generate_text`, :meth:`reconstruct`,
    :meth:`sample`, and the batching they rest on (:meth:`batch_from_text`, :meth:`batch_from_ids`)."""

    # Provided by TextVAE.
    config: ModelConfig
    data_config: DataConfig
    tokenizer: TextTokenizer | None
    encoder_tokenizer: TextTokenizer | None
    label_names: list[str]
    device: torch.device
    has_latent: bool

    # -- requirements and checks -------------------------------------------------------------------
    def require_tokenizer(self) -> TextTokenizer:
        """The decoder's tokenizer; :class:`TextVAEError` for a model built without one."""
        if self.tokenizer is None:
            raise TextVAEError("this model has no tokenizer; load it with TextVAE.from_pretrained")
        return self.tokenizer

    def require_latent(self) -> None:
        """Refuse latent-space work on a plain language model (``model.use_latent=false``)."""
        if not self.has_latent:
            raise TextVAEError(
                "this model is a language model without a latent (model.use_latent=false); it can only sample"
            )

    def sentence_problems(self, sentences: Sequence[str]) -> list[str | None]:
        """Why each sentence cannot be encoded meaningfully (None when it can), tokenized in one batch."""
        tok = self.require_tokenizer()
        ids = tok.encode_batch([normalize_text(s, self.data_config) for s in sentences])
        out: list[str | None] = []
        for raw, x in zip(sentences, ids):
            if not raw.strip() or not x:
                out.append("a sentence is empty; give some text")
            elif all(i == tok.unk_id for i in x):
                shown = raw.strip() if len(raw.strip()) <= 60 else raw.strip()[:57] + "..."
                out.append(f"every word of {shown!r} is unknown to the model; use words from its training data")
            else:
                out.append(None)
        return out

    def check_sentences(self, sentences: Sequence[str]) -> None:
        """Raise :class:`ParameterError` for an empty list, an empty sentence, or a sentence of only unknown
        words (every token id is ``<unk>``: the model would see nothing of it)."""
        if not sentences:
            raise ParameterError("no sentence given")
        problem = next((p for p in self.sentence_problems(sentences) if p), None)
        if problem:
            raise ParameterError(problem)

    def usable(self, sentences: Sequence[str]) -> list[bool]:
        """Which sentences :meth:`check_sentences` would accept (for filtering example data, not user input)."""
        return [p is None for p in self.sentence_problems(sentences)] if sentences else []

    def label_ids(self, labels: Sequence[str] | None, n: int) -> Tensor | None:
        """Label strings -> ``[n]`` ids for a conditional model (one label is repeated ``n`` times);
        None for an unconditional one. A missing, unknown or superfluous label raises :class:`ParameterError`."""
        if not self.config.conditional:
            if labels:
                raise ParameterError("this model is not conditional (model.conditional=false): it takes no label")
            return None
        if not labels:
            raise ParameterError(f"this is a conditional model: give a label, one of {', '.join(self.label_names)}")
        index = {name: i for i, name in enumerate(self.label_names)}
        unknown = [x for x in labels if x not in index]
        if unknown:
            raise ParameterError(f"label {unknown[0]!r} was not seen in training; use one of {', '.join(index)}")
        if len(labels) not in (1, n):
            raise ParameterError(f"{len(labels)} {{labels}} for {n} sentences; give one, or one per sentence")
        ids = [index[x] for x in labels]
        return torch.tensor(ids * n if len(ids) == 1 else ids, dtype=torch.long, device=self.device)

    # -- batches -----------------------------------------------------------------------------------
    def token_ids(self, sentences: Sequence[str]) -> list[list[int]]:
        """The decoder's ids of each sentence (no ``<s>``/``</s>``), normalised as the training data was
        (case, word tokenization) and capped at ``data.max_tokens``: what the model reads and is scored on."""
        tok = self.require_tokenizer()
        cap = self.data_config.max_tokens
        return [x[:cap] for x in tok.encode_batch([normalize_text(s, self.data_config) for s in sentences])]

    def batch_from_text(self, sentences: Sequence[str], labels: Sequence[str] | None = None) -> Batch:
        """Normalise sentences as the training data was, tokenize (also in the encoder's own tokenizer, when
        it has one: the view training gave it) and pad them. ``labels`` (strings, for a conditional model)
        may be left out and set on the batch later."""
        ids = self.token_ids(sentences)
        texts = [normalize_text(s, self.data_config) for s in sentences]
        cap = self.data_config.max_tokens
        enc = self._own_encoder_tokenizer()
        enc_ids = None if enc is None else [x[:cap] for x in enc.encode_batch(texts)]
        lab = None if labels is None else self.label_ids(labels, len(sentences))
        return self._collate(ids, enc_ids, lab)

    def batch_from_ids(self, token_ids: Sequence[Sequence[int]], labels: Sequence[int] | Tensor | None = None) -> Batch:
        """Pad the decoder's ids (no ``<s>``/``</s>``) into a batch on the model's device; ``labels`` are label
        ids (kept for a conditional model only). When the encoder has a tokenizer of its own, a sentence given
        as :class:`~textvae.data.batching.TokenIds` brings the encoder's ids along (what
        :func:`~textvae.data.eval_data.load_eval_data` gives); for a plain list they are derived here: each run
        of ids between ``<unk>`` tokens is decoded to text and encoded with the encoder's tokenizer, and each
        ``<unk>`` becomes the encoder's unknown token (so a word the decoder's vocabulary lacks reaches the
        encoder as unknown). Either way a caller never handles two parallel id lists."""
        lab = None
        if self.config.conditional and labels is not None:
            lab = torch.as_tensor(labels if isinstance(labels, Tensor) else list(labels), dtype=torch.long)
        enc = self._own_encoder_tokenizer()
        enc_ids = None if enc is None else [self._encoder_view(x, enc) for x in token_ids]
        return self._collate(token_ids, enc_ids, lab)

    def _own_encoder_tokenizer(self) -> TextTokenizer | None:
        return self.encoder_tokenizer if self.has_latent else None

    def _encoder_view(self, ids: Sequence[int], enc: TextTokenizer) -> list[int]:
        """The encoder's ids of a sentence given as decoder ids (see :meth:`batch_from_ids`)."""
        if isinstance(ids, TokenIds) and ids.encoder_ids is not None:
            return ids.encoder_ids
        tok, unk = self.require_tokenizer(), self.config.unk_id
        out: list[int] = []
        run: list[int] = []
        for t in [*ids, None]:  # None flushes the last run
            if t is None or t == unk:
                text = normalize_text(tok.decode(run), self.data_config) if run else ""
                out += enc.encode(text) if text else []
                run = []
                if t is not None:
                    out.append(enc.unk_id)
            else:
                run.append(int(t))
        return out[: self.data_config.max_tokens]

    def _collate(self, ids: Sequence[Sequence[int]], enc_ids: list[list[int]] | None, labels: Tensor | None) -> Batch:
        c, enc = self.config, self._own_encoder_tokenizer()
        specials = None if enc is None else (enc.pad_id, enc.bos_id, enc.eos_id)
        b = collate(ids, c.pad_id, c.bos_id, c.eos_id, None, enc_ids, specials)
        b.labels = labels
        return b.to(self.device)

    # -- text verbs --------------------------------------------------------------------------------
    def decode_ids(self, ids: Sequence[Sequence[int]], readable: bool = False) -> list[str]:
        """Text of each id sequence: the raw tokens joined (what metrics compare), or with ``readable``
        and a word vocabulary, detokenized and recased (:mod:`textvae.data.detokenize`) for people."""
        tok = self.require_tokenizer()
        texts = [tok.decode(x) for x in ids]
        if readable and tok.word_level:  # subword tokenizers already decode to running text
            from textvae.data.detokenize import detokenize

            texts = [detokenize(t) for t in texts]
        return texts

    @torch.no_grad()
    def encode_text(
        self,
        sentences: Sequence[str],
        labels: Sequence[str] | None = None,
        *,
        strict: bool = True,
        chunk_size: int = ENCODE_CHUNK,
    ) -> Posterior:
        """Posterior parameters of each sentence: ``Posterior(mu [N, Z], logvar [N, Z])`` (float32, in input
        order). ``labels``: one per sentence, or a single one for all (conditional models). ``strict``
        refuses empty and all-unknown sentences (see the module docstring)."""
        self.require_latent()
        if strict:
            self.check_sentences(sentences)
        if chunk_size < 1:
            raise ParameterError(f"{{chunk_size}} must be at least 1, got {chunk_size}")
        lab = self.label_ids(labels, len(sentences))
        mus, logvars = [], []
        for i in range(0, len(sentences), chunk_size):
            b = self.batch_from_text(sentences[i : i + chunk_size])
            b.labels = None if lab is None else lab[i : i + chunk_size]
            mu, logvar = self.encode_batch(b)
            mus.append(mu)
            logvars.append(logvar)
        if not mus:
            z = self.config.latent_size
            return Posterior(torch.empty(0, z, device=self.device), torch.empty(0, z, device=self.device))
        return Posterior(torch.cat(mus), torch.cat(logvars))

    @torch.no_grad()
    def generate_text(
        self,
        z: Tensor | None,
        decoding: DecodingConfig | None = None,
        generator: torch.Generator | None = None,
        labels: Tensor | None = None,
        *,
        num: int | None = None,
    ) -> list[str]:
        """Decode ``z [N, Z]`` (or ``num`` sentences of a language model; ``labels [N]`` ids for a conditional
        model) to text, readable unless ``decoding.detokenize`` is False."""
        ids = self.generate(z, num=num, decoding=decoding, generator=generator, labels=labels)
        return self.decode_ids(ids, (decoding or DecodingConfig()).detokenize)

    @torch.no_grad()
    def reconstruct(
        self,
        sentences: Sequence[str],
        decoding: DecodingConfig | None = None,
        labels: Sequence[str] | None = None,
        *,
        strict: bool = True,
        generator: torch.Generator | None = None,
    ) -> list[str]:
        """Encode to the posterior means and decode (greedy unless ``decoding`` says otherwise)."""
        mu = self.encode_text(sentences, labels, strict=strict).mu
        return self.generate_text(mu, decoding, generator, self.label_ids(labels, len(sentences)))

    @torch.no_grad()
    def sample(
        self, n: int, decoding: DecodingConfig | None = None, seed: int | None = None, label: str | None = None
    ) -> list[str]:
        """``n`` sentences decoded from prior samples (or from the language model when there is no latent);
        ``label`` for a conditional model; seeded by ``seed`` (None: the global generator)."""
        if n < 1:
            raise ParameterError(f"{{n}} must be at least 1, got {n}")
        g = torch.Generator(self.device).manual_seed(seed) if seed is not None else None
        lab = self.label_ids([label] if label is not None else None, n)
        z = self.sample_prior(n, g) if self.has_latent else None
        return self.generate_text(z, decoding, g, lab, num=n)
