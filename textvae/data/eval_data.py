"""A corpus to evaluate: read and cleaned exactly as the model's training data was, tokenized, every row
accounted for (kept, dropped and why), with row numbers to trace a score back to its line."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from textvae.data.batching import TokenIds
from textvae.data.corpus import preprocess
from textvae.data.dataset import encode_texts
from textvae.data.sources import read_texts
from textvae.errors import DataError

if TYPE_CHECKING:
    from textvae.data.tokenizer import TextTokenizer
    from textvae.model.vae import TextVAE

_NO_LIMIT = 1 << 30  # "no length filter": a max_length no sentence reaches


@dataclass
class EvalData:
    """A cleaned, tokenized corpus to evaluate, in file order.

    ``rows`` are 1-based row numbers in the source (lines of a text file, data rows of a table), so a
    score can be traced back to its line. ``labels`` maps each requested label column to one string per
    sentence; ``label_ids`` are the conditioning label ids of a conditional model (else None).
    """

    texts: list[str]
    token_ids: list[list[int]]
    rows: list[int]
    labels: dict[str, list[str]] = field(default_factory=dict)
    label_ids: list[int] | None = None
    stats: dict[str, int] = field(default_factory=dict)

    def describe(self) -> str:
        """One line saying how many rows were read, kept, dropped and truncated, and why."""
        s = self.stats
        parts = [f"read {s['read']} rows, evaluating {len(self.texts)}"]
        for key, what in (
            ("blank", "blank"),
            ("dropped_short", "shorter than data.min_length"),
            ("dropped_long", "longer than data.max_length"),
            ("unknown_label", "with a label unseen in training"),
            ("beyond_max", "beyond --max-sentences"),
        ):
            if s.get(key):
                parts.append(f"{s[key]} {what} dropped")
        if s.get("truncated"):
            parts.append(f"{s['truncated']} cut to data.max_length words")
        if s.get("token_truncated"):
            parts.append(f"{s['token_truncated']} cut to {s['max_tokens']} tokens (data.max_tokens)")
        if s.get("encoder_token_truncated"):
            parts.append(f"{s['encoder_token_truncated']} cut to {s['max_tokens']} encoder tokens (data.max_tokens)")
        return "; ".join(parts)


def load_eval_data(
    model: TextVAE,
    source: str,
    *,
    label_columns: Sequence[str] = (),
    length_filter: bool = False,
    max_sentences: int | None = None,
    key: str = "the data path",
    flags: dict[str, str] | None = None,
    text_column: str | None = None,
) -> EvalData:
    """Read ``source`` and clean it exactly as the model's training data was (strip, lowercase, word
    tokenizer from ``model.data_config``), then tokenize with the model's tokenizer, capped at
    ``data.max_tokens``. When the encoder has a tokenizer of its own, each sentence's ids are
    :class:`~textvae.data.batching.TokenIds` that carry the encoding of the same text in it (capped
    likewise), as in training; :meth:`TextVAE.batch_from_ids` hands them to the encoder.

    Unlike training, nothing is deduplicated, and by default no sentence is dropped for its length (a test
    set is evaluated whole, as the literature does); ``length_filter=True`` applies the training
    ``min_length``/``max_length`` policy. Every drop is counted in ``stats`` (see :meth:`EvalData.describe`).
    A conditional model's conditioning column (its ``data.label_column``) is always read; sentences whose
    label it never saw are dropped. Raises :class:`DataError` when nothing is left.
    """
    tokenizer = model.require_tokenizer()
    cfg = dataclasses.replace(model.data_config, train=source, valid=None, format="auto", dedup=False)
    if text_column:  # another column name than in training (``key``/``flags`` name the caller's settings)
        cfg = dataclasses.replace(cfg, text_column=text_column)
    if not length_filter:
        cfg = dataclasses.replace(cfg, min_length=1, max_length=_NO_LIMIT, length_policy="drop")
    cond = model.data_config.label_column if model.config.conditional else None
    columns = list(dict.fromkeys([*label_columns, *([cond] if cond else [])]))

    def read(column: str | None):
        raw = read_texts(source, dataclasses.replace(cfg, label_column=column), key, flags)
        # Row numbers ride along through the cleaning (preprocess keeps extra columns), to report them.
        raw = raw.add_column("_row", list(range(1, len(raw) + 1)))
        return preprocess(raw, cfg)

    ds, stats = read(columns[0] if columns else None)
    table = ds[:]
    texts, rows = list(table["text"]), list(table["_row"])
    labels = {columns[0]: [str(x) for x in table["label"]]} if columns else {}
    for col in columns[1:]:  # read_texts selects one label column at a time; the cleaning is the same
        labels[col] = [str(x) for x in read(col)[0][:]["label"]]
    stats = {k: stats[k] for k in ("read", "blank", "dropped_short", "dropped_long", "truncated")}

    label_ids = None
    if cond:
        index = {name: i for i, name in enumerate(model.label_names)}
        keep = [i for i, y in enumerate(labels[cond]) if y in index]
        stats["unknown_label"] = len(texts) - len(keep)
        texts, rows = [texts[i] for i in keep], [rows[i] for i in keep]
        labels = {c: [v[i] for i in keep] for c, v in labels.items()}
        label_ids = [index[y] for y in labels[cond]]
    if max_sentences is not None and len(texts) > max_sentences:
        stats["beyond_max"] = len(texts) - max_sentences
        texts, rows = texts[:max_sentences], rows[:max_sentences]
        labels = {c: v[:max_sentences] for c, v in labels.items()}
        label_ids = None if label_ids is None else label_ids[:max_sentences]
    if not texts:
        raise DataError(f"{source} has no sentence to evaluate ({stats['read']} rows read, {stats['blank']} blank)")
    limit = cfg.max_tokens

    def capped(tok: TextTokenizer, stat: str) -> list[list[int]]:
        # One token over the cap tells which sentences the cap cuts, so the cut is reported, not silent.
        ids = encode_texts(tok, texts, limit + 1)
        stats[stat] = sum(len(x) > limit for x in ids)
        return [x[:limit] for x in ids]

    ids = capped(tokenizer, "token_truncated")
    stats["max_tokens"] = limit
    enc = model.encoder_tokenizer if model.has_latent else None
    if enc is not None:  # a pretrained encoder must read ids of its own vocabulary, as in training
        ids = [TokenIds(x, e) for x, e in zip(ids, capped(enc, "encoder_token_truncated"))]
    return EvalData(texts, ids, rows, labels, label_ids, stats)
