"""From a :class:`DataConfig` to token ids: load the corpus, train (or reuse) the tokenizer, encode.

Token ids stay in Arrow tables (🤗 ``datasets``), not Python lists. A corpus read from files is memory-mapped
from the ``datasets`` cache, so a corpus larger than memory trains in bounded memory: a batch reads only its
own rows, and what stays in memory per sentence is its length (a numpy array). Tokenization is cached
too: its fingerprint is the cleaned corpus's fingerprint plus the tokenizer's, so a second run on the same
file with the same tokenizer reads the ids from disk instead of encoding again.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import datasets
import numpy as np
import pyarrow.compute as pc

from textvae.config import DataConfig
from textvae.data.batching import Batch, batch_indices, collate
from textvae.data.corpus import load_corpus
from textvae.data.sources import arrow_column
from textvae.data.tokenizer import TextTokenizer, train_tokenizer

_TOKENIZE_VERSION = "1"  # bump when the tokenized columns change meaning, to invalidate old caches
_ROWS_PER_MAP_BATCH = 2_000
_ROWS_PER_READ = 10_000


@dataclass
class TokenizedSplit:
    """One split of the corpus, tokenized.

    ``table`` holds the columns ``text``, ``ids`` (token ids, no begin/end tokens), ``enc_ids`` (the same
    sentence in the encoder's own tokenizer, if it has one) and ``label_id`` (-1: a label unseen in
    training), as a ``datasets.Dataset``. ``lengths[i]`` is ``len(ids[i])`` (numpy, int64).
    ``specials`` and ``encoder_specials`` are the ``(pad, bos, eos)`` ids that :func:`collate` frames with.
    """

    table: datasets.Dataset
    lengths: np.ndarray
    specials: tuple[int, int, int]
    encoder_specials: tuple[int, int, int] | None = None

    def __post_init__(self) -> None:
        cols = [c for c in ("ids", "enc_ids", "label_id") if c in self.table.column_names]
        self._rows = self.table.select_columns(cols)  # batches never decode the text column

    def __len__(self) -> int:
        return len(self.table)

    @property
    def has_labels(self) -> bool:
        return "label_id" in self.table.column_names

    def label_ids(self) -> np.ndarray | None:
        """Label id of every sentence (``[N]`` int64), or None for an unlabelled corpus."""
        return arrow_column(self.table, "label_id").to_numpy() if self.has_labels else None

    def texts(self, n: int | None = None) -> list[str]:
        """The first ``n`` (default: all) cleaned sentences, as text."""
        table = self.table if n is None else self.table.select(range(min(n, len(self))))
        return arrow_column(table, "text").to_pylist()

    def collate(self, indices: Sequence[int] | np.ndarray) -> Batch:
        """The sentences at ``indices`` as one padded :class:`Batch` (reads only those rows)."""
        rows = self._rows[np.asarray(indices, dtype=np.int64)]
        return collate(rows["ids"], *self.specials, rows.get("label_id"), rows.get("enc_ids"), self.encoder_specials)

    def batches(
        self, batch_size: int, indices: np.ndarray | None = None, max_batch_tokens: int | None = None
    ) -> Iterator[Batch]:
        """Deterministic length-sorted batches over ``indices`` (default: every sentence), each once."""
        indices = np.arange(len(self)) if indices is None else np.asarray(indices, dtype=np.int64)
        for part in batch_indices(
            self.lengths[indices],
            batch_size,
            seed=0,
            epoch=0,
            shuffle=False,
            max_batch_tokens=max_batch_tokens,
        ):
            yield self.collate(indices[part])


@dataclass
class TokenizedCorpus:
    """The tokenizer(s), both tokenized splits, the label names and the cleaning counts."""

    tokenizer: TextTokenizer
    train: TokenizedSplit
    valid: TokenizedSplit
    label_names: list[str] = field(default_factory=list)  # label id -> label string
    stats: dict[str, int] = field(default_factory=dict)
    encoder_tokenizer: TextTokenizer | None = None


def encode_texts(tokenizer: TextTokenizer, texts: list[str], max_tokens: int) -> list[list[int]]:
    """Encode and cap each sentence at ``max_tokens`` ids (bounds memory for pathological lines)."""
    return [ids[:max_tokens] for ids in tokenizer.encode_batch(texts)]


def load_encoder_tokenizer(cfg: DataConfig) -> TextTokenizer | None:
    """The encoder's own tokenizer (``data.encoder_tokenizer``, a pretrained one), or None if it has none."""
    if not cfg.encoder_tokenizer:
        return None
    return train_tokenizer(
        [], dataclasses.replace(cfg, tokenizer="pretrained", pretrained_tokenizer=cfg.encoder_tokenizer)
    )


def iter_texts(ds: datasets.Dataset, rows_per_read: int = _ROWS_PER_READ) -> Iterator[str]:
    """Every ``text`` of ``ds``, read a block of rows at a time (bounded memory on any corpus size)."""
    for block in ds.select_columns("text").iter(batch_size=rows_per_read):
        yield from block["text"]


def prepare_corpus(
    cfg: DataConfig,
    tokenizer: TextTokenizer | None = None,
    label_names: list[str] | None = None,
    encoder_tokenizer: TextTokenizer | None = None,
) -> TokenizedCorpus:
    """Load and clean the corpus, train a tokenizer on the training split unless one is given, and encode.

    ``label_names`` fixes the label -> id mapping (when resuming); otherwise labels are numbered in
    sorted order of the training split's label strings. With ``data.encoder_tokenizer`` the sentences are
    also encoded with that tokenizer (``encoder_tokenizer`` if given, else loaded from the config).
    """
    corpus = load_corpus(cfg)
    if tokenizer is None:
        tokenizer = train_tokenizer(iter_texts(corpus.train), cfg)
    enc = None
    if cfg.encoder_tokenizer:
        enc = encoder_tokenizer or load_encoder_tokenizer(cfg)
    if "label" in corpus.train.column_names:
        label_names = label_names or sorted(str(x) for x in corpus.train.unique("label"))
    else:
        label_names = []

    def split(ds: datasets.Dataset) -> TokenizedSplit:
        table = _tokenize(ds, tokenizer, enc, cfg.max_tokens, label_names)
        lengths = pc.list_value_length(arrow_column(table, "ids")).to_numpy()
        specials = (tokenizer.pad_id, tokenizer.bos_id, tokenizer.eos_id)
        enc_specials = None if enc is None else (enc.pad_id, enc.bos_id, enc.eos_id)
        return TokenizedSplit(table, lengths.astype(np.int64), specials, enc_specials)

    return TokenizedCorpus(
        tokenizer=tokenizer,
        train=split(corpus.train),
        valid=split(corpus.valid),
        label_names=list(label_names),
        stats=dict(corpus.stats),
        encoder_tokenizer=enc,
    )


def _tokenize(
    ds: datasets.Dataset,
    tokenizer: TextTokenizer,
    encoder_tokenizer: TextTokenizer | None,
    max_tokens: int,
    label_names: list[str],
) -> datasets.Dataset:
    """``ds`` plus the ``ids`` [``enc_ids``] [``label_id``] columns, computed a block at a time and cached."""
    index = {name: i for i, name in enumerate(label_names)}
    labelled = "label" in ds.column_names

    def encode(batch: dict[str, list]) -> dict[str, list]:
        out = {"ids": encode_texts(tokenizer, batch["text"], max_tokens)}
        if encoder_tokenizer is not None:
            out["enc_ids"] = encode_texts(encoder_tokenizer, batch["text"], max_tokens)
        if labelled:  # a label never seen in training has no id (-1): label-dependent code skips it
            out["label_id"] = [index.get(str(x), -1) for x in batch["label"]]
        return out

    # The cache key names everything the new columns depend on; datasets cannot hash a tokenizer itself.
    key = [ds._fingerprint, tokenizer.fingerprint(), str(max_tokens), _TOKENIZE_VERSION, *label_names]
    if encoder_tokenizer is not None:
        key.append(encoder_tokenizer.fingerprint())
    features = ds.features.copy()
    features["ids"] = datasets.Sequence(datasets.Value("int32"))
    if encoder_tokenizer is not None:
        features["enc_ids"] = datasets.Sequence(datasets.Value("int32"))
    if labelled:
        features["label_id"] = datasets.Value("int64")
    return ds.map(
        encode,
        batched=True,
        batch_size=_ROWS_PER_MAP_BATCH,
        features=features,
        new_fingerprint=hashlib.sha256("\0".join(key).encode()).hexdigest()[:32],
        desc="tokenizing",
    )
