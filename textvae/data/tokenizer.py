"""Subword and word tokenizers, trained on the training split and saved inside the model directory.

Four kinds share one interface (:class:`TextTokenizer`, in :mod:`textvae.data.tokenizer_base`); each is a
small class in :mod:`textvae.data.tokenizer_kinds`: ``word`` (🤗 tokenizers WordLevel), ``bpe`` (🤗 tokenizers
byte-level BPE), ``unigram`` (sentencepiece) and ``pretrained`` (any transformers tokenizer, kept as it is).

Trained kinds use ``<pad>`` = 0, ``<s>`` = 1, ``</s>`` = 2, ``<unk>`` = 3. Token ids never include the
begin/end tokens; the model adds them. ``tokenizer_config.json`` records the kind, special ids, vocabulary
size and a fingerprint of the vocabulary, which :meth:`TextTokenizer.load` checks.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from typing import Any

from textvae.config import DataConfig
from textvae.data.tokenizer_base import CONFIG_FILE, SPECIALS, RemoteCodeRefused, TextTokenizer
from textvae.data.tokenizer_kinds import (
    BPETokenizer,
    PretrainedTokenizer,
    UnigramTokenizer,
    WordTokenizer,
)
from textvae.errors import DataError

__all__ = [
    "CONFIG_FILE",
    "KINDS",
    "SPECIALS",
    "BPETokenizer",
    "PretrainedTokenizer",
    "RemoteCodeRefused",
    "TextTokenizer",
    "UnigramTokenizer",
    "WordTokenizer",
    "train_tokenizer",
]

KINDS = TextTokenizer.kinds()  # ("word", "bpe", "unigram", "pretrained"): registered by tokenizer_kinds
_TRAINED: dict[str, Any] = {"word": WordTokenizer, "bpe": BPETokenizer, "unigram": UnigramTokenizer}


def train_tokenizer(texts: Iterable[str], cfg: DataConfig) -> TextTokenizer:
    """Train a ``cfg.tokenizer`` tokenizer on ``texts`` (the training split), or load a pretrained one.

    ``cfg.vocab_size`` bounds trained vocabularies, specials included. Empty input, or input from which
    nothing beyond the special tokens can be learned, raises :class:`DataError`.
    """
    kind = cfg.tokenizer
    if kind == PretrainedTokenizer.kind:
        return PretrainedTokenizer.from_config(cfg)
    if kind not in _TRAINED:
        raise DataError(f"data.tokenizer must be one of {', '.join(KINDS)}; got {kind!r}")
    if cfg.vocab_size < len(SPECIALS) + 1:
        raise DataError(f"data.vocab_size must be at least {len(SPECIALS) + 1}; got {cfg.vocab_size}")
    nonblank = (t for t in texts if t and t.strip())
    first = next(nonblank, None)
    if first is None:
        raise DataError("cannot train a tokenizer on no text; check the training corpus (data.train)")
    # ``texts`` may be a stream over a corpus larger than memory: it is read once, never stored.
    stream = _Counted(itertools.chain([first], nonblank))
    tok = _TRAINED[kind].train(stream, cfg)
    if tok.vocab_size <= len(SPECIALS):
        raise DataError(
            f"the {kind} tokenizer learned nothing from {stream.count} sentences (min_frequency="
            f"{cfg.min_frequency}); provide more text or lower data.min_frequency"
        )
    return tok


class _Counted:
    """An iterator over ``texts`` that counts what it yielded (for messages about a stream)."""

    def __init__(self, texts: Iterator[str]) -> None:
        self._texts, self.count = texts, 0

    def __iter__(self) -> Iterator[str]:
        for t in self._texts:
            self.count += 1
            yield t
