"""Normalisation of a single sentence, shared by corpus preprocessing and inference-time input."""

from __future__ import annotations

from functools import lru_cache

from textvae.config import DataConfig


@lru_cache(maxsize=1)
def _treebank():
    from nltk.tokenize import TreebankWordTokenizer

    return TreebankWordTokenizer()


def normalize_text(text: str, cfg: DataConfig) -> str:
    """Strip, optionally lowercase, and word-tokenize ``text`` as ``cfg`` says (words joined by spaces)."""
    text = text.strip()
    if cfg.lowercase:
        text = text.lower()
    if cfg.word_tokenizer == "whitespace":
        text = " ".join(text.split())
    elif cfg.word_tokenizer == "treebank":
        text = " ".join(_treebank().tokenize(text))
    return text
