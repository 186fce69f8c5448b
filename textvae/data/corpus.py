"""A training corpus: one source read (:mod:`textvae.data.sources`), cleaned, split into train and validation.

:func:`preprocess` normalises every sentence, applies the length policy, drops blanks and (optionally)
duplicates, and counts what it removed (:data:`STAT_KEYS`), so the run can say what happened to every row.
Every problem the user can fix is raised as :class:`DataError` with a one-line message.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

import datasets
import numpy as np
import pyarrow as pa

from textvae.config import DataConfig
from textvae.data.sources import arrow_column, quiet_datasets, read_synthetic, read_texts
from textvae.data.text import normalize_text
from textvae.errors import DataError

#: Keys of :attr:`Corpus.stats`. ``read == train + valid + blank + dropped_short + dropped_long + duplicates``;
#: ``truncated`` counts sentences that were kept but shortened (a subset of the kept ones).
STAT_KEYS = ("read", "blank", "dropped_short", "dropped_long", "truncated", "duplicates", "train", "valid")

# Row status codes written by the cleaning pass (kept rows are < _BLANK).
_KEPT, _TRUNCATED, _BLANK, _SHORT, _LONG = 0, 1, 2, 3, 4


@dataclass
class Corpus:
    """A cleaned corpus: ``text`` (and ``label``) columns in both splits, plus counts of what was removed."""

    train: datasets.Dataset
    valid: datasets.Dataset
    stats: dict[str, int] = field(default_factory=dict)


# -- loading -------------------------------------------------------------------------------------------


def load_corpus(cfg: DataConfig) -> Corpus:
    """Read, clean and split the corpus that ``cfg`` describes.

    Without ``cfg.valid`` a seeded random ``valid_fraction`` of the cleaned training sentences (at least
    one) is held out; with it, that source is loaded and cleaned the same way. Stats are summed over both.
    """
    _check_config(cfg)
    train, stats = preprocess(read_texts(cfg.train, cfg, "data.train"), cfg)
    if len(train) == 0:
        raise DataError(_empty_message(cfg.train, stats, cfg))
    if cfg.valid is None:
        train, valid = _split(train, cfg)
    else:
        if cfg.valid == "synthetic":  # a fresh sample (another seed), sized like the held-out fraction
            n_valid = max(1, round(cfg.synthetic_size * cfg.valid_fraction))
            raw = read_synthetic(cfg.valid, cfg, n=n_valid, seed=cfg.seed + 1)
        else:
            raw = read_texts(cfg.valid, cfg, "data.valid")
        valid, vstats = preprocess(raw, cfg)
        if len(valid) == 0:
            raise DataError(_empty_message(cfg.valid, vstats, cfg))
        stats = {k: stats[k] + vstats[k] for k in stats}
    stats["train"], stats["valid"] = len(train), len(valid)
    return Corpus(train=train, valid=valid, stats=stats)


# -- cleaning --------------------------------------------------------------------------------------------


def _check_config(cfg: DataConfig) -> None:
    if cfg.word_tokenizer not in ("none", "whitespace", "treebank"):
        raise DataError(f"data.word_tokenizer must be none, whitespace or treebank; got {cfg.word_tokenizer!r}")
    if cfg.length_policy not in ("drop", "truncate"):
        raise DataError(f"data.length_policy must be drop or truncate; got {cfg.length_policy!r}")
    if cfg.max_length < 1 or cfg.min_length > cfg.max_length:
        raise DataError(
            f"need 1 <= data.max_length and data.min_length <= data.max_length; "
            f"got min_length={cfg.min_length}, max_length={cfg.max_length}"
        )
    if cfg.valid is None and not 0.0 <= cfg.valid_fraction < 1.0:
        raise DataError(f"data.valid_fraction must be in [0, 1); got {cfg.valid_fraction}")


def _clean_batch(batch: dict[str, list], cfg: DataConfig) -> dict[str, list]:
    """Normalise each sentence and mark it kept / truncated / blank / too short / too long."""
    texts, status = [], []
    for raw in batch["text"]:
        text = normalize_text(raw, cfg)
        words = text.split()
        if not words:
            code = _BLANK
        elif len(words) < cfg.min_length:
            code = _SHORT
        elif len(words) <= cfg.max_length:
            code = _KEPT
        elif cfg.length_policy == "drop":
            code = _LONG
        else:
            code, text = _TRUNCATED, _first_words(text, cfg.max_length)
        texts.append(text if code <= _TRUNCATED else "")  # don't store text that is thrown away
        status.append(code)
    return {"text": texts, "_status": status}


def _first_words(text: str, n: int) -> str:
    """The first ``n`` whitespace-separated words of ``text``, with their original spacing."""
    m = re.match(rf"\s*(?:\S+\s+){{{n - 1}}}\S+", text)
    return m.group(0).strip() if m else text


def preprocess(ds: datasets.Dataset, cfg: DataConfig) -> tuple[datasets.Dataset, dict[str, int]]:
    """Clean ``ds`` (columns ``text`` [+ ``label``]) as ``cfg`` says and count what happened to the rows.

    Steps, in order: strip; drop blank rows; lowercase; word-tokenize; drop rows shorter than
    ``min_length`` words; drop or truncate rows longer than ``max_length`` words; drop exact duplicates
    (first kept) when ``dedup``. Returns the cleaned dataset and counts (``train``/``valid`` set to 0).
    """
    _check_config(cfg)
    stats = dict.fromkeys(STAT_KEYS, 0)
    stats["read"] = len(ds)
    if len(ds) == 0:
        return ds, stats
    with quiet_datasets():
        ds = ds.map(_clean_batch, batched=True, batch_size=2_000, fn_kwargs={"cfg": cfg})
    status = arrow_column(ds, "_status").to_numpy()
    counts = np.bincount(status, minlength=5)
    stats["blank"], stats["dropped_short"], stats["dropped_long"] = (int(counts[c]) for c in (_BLANK, _SHORT, _LONG))
    stats["truncated"] = int(counts[_TRUNCATED])
    keep = np.flatnonzero(status <= _TRUNCATED)
    if cfg.dedup and len(keep):
        first = _first_occurrences(arrow_column(ds, "text"), keep)
        stats["duplicates"] = len(keep) - len(first)
        keep = first
    mask = np.zeros(len(ds), dtype=bool)
    mask[keep] = True
    return keep_rows(ds, mask).remove_columns("_status"), stats


def _first_occurrences(texts: pa.ChunkedArray, rows: np.ndarray, block: int = 50_000) -> np.ndarray:
    """``rows`` (ascending) without those whose text already appeared in an earlier one.

    Texts are compared by a 64-bit BLAKE2b digest computed a block of rows at a time, so memory is
    8 bytes per row whatever the corpus size (two distinct sentences collide with probability ~1e-7
    in a corpus of 3 million).
    """
    digests = np.empty(len(rows), dtype=np.uint64)
    for s in range(0, len(rows), block):
        part = texts.take(pa.array(rows[s : s + block])).to_pylist()
        digests[s : s + len(part)] = [
            int.from_bytes(hashlib.blake2b(t.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")
            for t in part
        ]
    _, first = np.unique(digests, return_index=True)
    return rows[np.sort(first)]


def _split(ds: datasets.Dataset, cfg: DataConfig) -> tuple[datasets.Dataset, datasets.Dataset]:
    """Seeded random train/valid split; corpus order is kept inside each part."""
    n = len(ds)
    if n < 2:
        raise DataError(
            f"{cfg.train} has only {n} sentence after preprocessing, too few to hold out a validation "
            "set; provide more data or a separate data.valid"
        )
    n_valid = min(n - 1, max(1, round(n * cfg.valid_fraction)))
    perm = np.random.default_rng(cfg.seed).permutation(n)
    is_valid = np.zeros(n, dtype=bool)
    is_valid[perm[:n_valid]] = True
    return keep_rows(ds, ~is_valid), keep_rows(ds, is_valid)


def keep_rows(ds: datasets.Dataset, mask: np.ndarray) -> datasets.Dataset:
    """The rows of ``ds`` where the boolean ``mask`` (``[len(ds)]``) is true, in order.

    ``Dataset.select`` turns its indices into a Python list (~40 bytes a row); ``filter`` writes the row
    mapping a block at a time (to the cache when ``ds`` is file-backed), so memory stays bounded.
    """
    if mask.all():
        return ds
    with quiet_datasets():
        return ds.filter(
            _mask_block,
            with_indices=True,
            batched=True,
            batch_size=50_000,
            input_columns=[],  # the mask needs only row positions: read no column at all
            fn_kwargs={"mask": mask},
        )


def _mask_block(indices: list[int], mask: np.ndarray) -> np.ndarray:
    return mask[indices]


def _empty_message(source: str, stats: dict[str, int], cfg: DataConfig) -> str:
    return (
        f"{source} contains no sentences after preprocessing ({stats['read']} read: {stats['blank']} blank, "
        f"{stats['dropped_short']} shorter than data.min_length={cfg.min_length}, {stats['dropped_long']} "
        f"longer than data.max_length={cfg.max_length}); give a file with text or relax the length limits"
    )


def describe_cleaning(stats: dict[str, int], cfg: DataConfig) -> str:
    """One line saying what the cleaning did to the rows read (train and validation sources together):
    ``310 rows read -> 283 sentences (12 blank, 9 longer than data.max_length=50 words, 6 duplicates);
    269 train, 14 valid``. Steps that removed nothing are left out."""
    kept = stats.get("train", 0) + stats.get("valid", 0)
    parts = [
        (stats.get("blank", 0), "blank"),
        (stats.get("dropped_short", 0), f"shorter than data.min_length={cfg.min_length} words"),
        (stats.get("dropped_long", 0), f"longer than data.max_length={cfg.max_length} words"),
        (stats.get("truncated", 0), f"cut to data.max_length={cfg.max_length} words (kept)"),
        (stats.get("duplicates", 0), "duplicates"),
    ]
    reasons = ", ".join(f"{n} {what}" for n, what in parts if n)
    return (
        f"{stats.get('read', 0)} rows read -> {kept} sentences"
        + (f" ({reasons})" if reasons else " (none removed)")
        + f"; {stats.get('train', 0)} train, {stats.get('valid', 0)} valid"
    )
