"""Reading one corpus source through 🤗 ``datasets``, as it is (no cleaning).

A source is a text file (one sentence per line), a file of paragraphs (split into sentences by Punkt,
trained unsupervised on the file itself), JSON lines, CSV/TSV, a directory of ``.txt`` files, a folder
written by ``save_to_disk``, a Hugging Face dataset name, or ``synthetic`` (:mod:`textvae.data.synthetic`).
Every reader returns a :class:`datasets.Dataset` with a ``text`` column (and ``label`` when
``data.label_column`` is set). File loads use the ``datasets`` cache (keyed on path and modification time),
so a second run on the same file skips parsing.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import datasets
import pyarrow as pa

from textvae.config import DataConfig
from textvae.errors import DataError

_DISK_MARKERS = ("dataset_info.json", "state.json", "dataset_dict.json")
# Suffixes that mark a path as a file name: such a missing path is "file not found", never a hub name.
_FILE_SUFFIXES = (".txt", ".text", ".json", ".jsonl", ".csv", ".tsv", ".gz", ".bz2", ".xz", ".zip", ".parquet")
# "owner/name" or a bare "name": what a Hugging Face dataset id looks like (and a missing file usually doesn't).
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")


def detect_format(source: str, fmt: str = "auto", key: str = "data.train / data.valid") -> str:
    """The format of ``source``: ``fmt`` itself unless it is ``auto``, else guessed from the path.
    ``key`` names the setting or flag in messages."""
    if fmt != "auto":
        return fmt
    path = Path(source).expanduser()
    if path.is_dir():
        return "disk" if any((path / m).is_file() for m in _DISK_MARKERS) else "dir"
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        return "jsonl"
    if suffix in (".csv", ".tsv"):
        return "csv"
    if path.is_file():
        return "lines"
    if suffix not in _FILE_SUFFIXES and _HUB_ID.match(source) and not source.startswith("."):
        return "hf"
    raise DataError(f"file not found: {source}; check {key}")


def read_texts(
    source: str, cfg: DataConfig, key: str = "data.train / data.valid", flags: dict[str, str] | None = None
) -> datasets.Dataset:
    """Load one source as it is (no cleaning): a ``text`` column, plus ``label`` iff ``cfg.label_column``.

    Messages name what the user typed: ``key`` the setting or flag that gave ``source``, ``flags`` the
    flags that set ``text_column`` / ``label_column`` (default: the ``data.`` config keys)."""
    flags = {"text_column": "data.text_column", "label_column": "data.label_column", **(flags or {})}
    datasets.disable_progress_bar()  # keep CLI output clean; loads are quick or cached anyway
    if source == "synthetic":
        return read_synthetic(source, cfg)
    fmt = detect_format(source, cfg.format, key)
    path = Path(source).expanduser()
    _check_source(source, path, fmt, cfg, key, flags)
    if fmt in _FILE_FORMATS and path.stat().st_size == 0:
        return _empty(cfg)
    if fmt == "lines":
        return _load_files("text", [path], source)
    if fmt == "dir":
        return _read_dir(path, source, cfg)
    if fmt == "paragraphs":
        return datasets.Dataset.from_dict({"text": split_sentences(_paragraphs(_read_utf8(path)))})
    if fmt == "jsonl":
        ds = _load_files("json", [path], source)
    elif fmt == "csv":
        # na_filter=False: a sentence such as "NA" or "null" stays text instead of becoming a missing value.
        sep = "\t" if path.suffix.lower() == ".tsv" else ","
        ds = _load_files("csv", [path], source, sep=sep, na_filter=False)
    elif fmt == "disk":
        ds = _load_disk(path, source)
    else:
        ds = _load_hub(source, key)
    return _select_columns(ds, source, cfg, flags)


_FILE_FORMATS = ("lines", "paragraphs", "jsonl", "csv")
_FORMATS = (*_FILE_FORMATS, "dir", "disk", "hf")


def _check_source(source: str, path: Path, fmt: str, cfg: DataConfig, key: str, flags: dict[str, str]) -> None:
    """A :class:`DataError` naming what to change when ``source`` cannot be read as ``fmt``."""
    if fmt not in _FORMATS:
        raise DataError(f"unknown data.format '{fmt}'; use auto, lines, paragraphs, jsonl, csv, dir, hf or disk")
    if fmt != "hf" and not path.exists():
        raise DataError(f"file not found: {source}; check {key}")
    if cfg.label_column and fmt in ("lines", "paragraphs", "dir"):
        raise DataError(
            f"{flags['label_column']} is set but {source} is plain text ({fmt}); use a jsonl/csv file with a "
            f"label column, or unset {flags['label_column']}"
        )
    if fmt in _FILE_FORMATS and not path.is_file():
        raise DataError(f"{source} is not a file (data.format={fmt}); give a file or set data.format")
    if fmt in ("dir", "disk") and not path.is_dir():
        raise DataError(f"{source} is not a directory (data.format={fmt}); give a directory or set data.format")


def _read_dir(path: Path, source: str, cfg: DataConfig) -> datasets.Dataset:
    """Every ``.txt`` file under ``path``, one sentence per line."""
    candidates = sorted(path.rglob("*.txt"))
    # Dangling links, sockets, files without read permission: name them rather than skip them silently.
    unreadable = [p for p in candidates if not p.is_dir() and (not p.is_file() or not os.access(p, os.R_OK))]
    if unreadable:
        raise DataError(f"{unreadable[0]} cannot be read; fix or remove it from {source}")
    files = [p for p in candidates if p.is_file()]
    if not files:
        raise DataError(f"{source} contains no .txt files; put one sentence per line in .txt files")
    files = [p for p in files if p.stat().st_size > 0]  # the text builder can't infer a schema from nothing
    return _load_files("text", files, source) if files else _empty(cfg)


def _empty(cfg: DataConfig) -> datasets.Dataset:
    cols: dict[str, list[str]] = {"text": []}
    if cfg.label_column:
        cols["label"] = []
    return datasets.Dataset.from_dict(cols, features=datasets.Features({k: datasets.Value("string") for k in cols}))


@contextlib.contextmanager
def quiet_datasets() -> Iterator[None]:
    """Silence ``datasets`` logging while loading: failures are re-raised as one-line DataErrors instead."""
    previous = datasets.logging.get_verbosity()
    datasets.logging.set_verbosity(logging.CRITICAL)
    try:
        yield
    finally:
        datasets.logging.set_verbosity(previous)


def _root_cause(e: BaseException) -> BaseException:
    while (nxt := e.__cause__ or e.__context__) is not None:
        e = nxt
    return e


def _load_files(builder: str, files: list[Path], source: str, **kwargs: Any) -> datasets.Dataset:
    """``load_dataset(builder, data_files=files)`` with decoding and parse errors turned into DataErrors."""
    try:
        with quiet_datasets():
            return datasets.load_dataset(builder, data_files=[str(f) for f in files], split="train", **kwargs)
    except (datasets.exceptions.DatasetGenerationError, ValueError, StopIteration) as e:
        cause = _root_cause(e)
        if isinstance(cause, UnicodeDecodeError) or "decode" in str(cause).lower():
            for f in files:  # find which file is at fault: only on failure, so the happy path reads once
                _read_utf8(f)
        reason = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
        raise DataError(f"could not read {source} as {builder}: {reason}; fix the file or set data.format") from None


def _read_utf8(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise DataError(
            f"{path} is not UTF-8 text (invalid byte at line {line}); re-save it with UTF-8 encoding, "
            f"e.g. iconv -f latin1 -t utf-8"
        ) from None


def _load_disk(path: Path, source: str) -> datasets.Dataset:
    try:
        loaded = datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError, OSError) as e:
        raise DataError(f"{source} is not a dataset saved with save_to_disk ({e}); check the path") from None
    return _pick_split(loaded, source)


def _hub_unreachable() -> str | None:
    """Why the Hub cannot be asked for a dataset right now (offline mode, no connection), else None.

    Asked before ``load_dataset``, whose retries take ~25 s to give up without a network: a mistyped
    local path that looks like a dataset name (``mycorpus``) then gets its answer at once."""
    import os
    import socket
    from urllib.parse import urlparse

    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on"):
            return f"{var} is set"
    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)), timeout=3).close()
    except OSError:
        return f"{url.hostname} cannot be reached"
    return None


def _load_hub(name: str, key: str = "data.train") -> datasets.Dataset:
    why = _hub_unreachable()
    if why is not None:
        raise DataError(
            f"file not found: {name}, and it cannot be loaded as a Hugging Face dataset ({why}); check {key}"
        )
    try:
        with quiet_datasets():
            loaded = datasets.load_dataset(name)
    except Exception as e:  # network, auth, unknown name: all are the user's to fix
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DataError(
            f"'{name}' is not a local file, and loading it as a Hugging Face dataset failed ({reason}); "
            "check the path, or the dataset name and network access"
        ) from None
    return _pick_split(loaded, name)


def _pick_split(loaded: Any, source: str) -> datasets.Dataset:
    """The ``train`` split of a DatasetDict (or its only split); a Dataset as it is."""
    if isinstance(loaded, datasets.Dataset):
        return loaded
    if "train" in loaded:
        return loaded["train"]
    if len(loaded) == 1:
        return next(iter(loaded.values()))
    raise DataError(f"{source} has splits {', '.join(loaded)} but no 'train'; save the training split alone")


def _select_columns(ds: datasets.Dataset, source: str, cfg: DataConfig, flags: dict[str, str]) -> datasets.Dataset:
    """Keep the text (and label) columns, renamed to ``text`` / ``label``, values as ``str``."""
    cols = ds.column_names
    for key, col in (("text_column", cfg.text_column), ("label_column", cfg.label_column)):
        if col is not None and col not in cols:
            raise DataError(
                f"{source} has no column '{col}' (available: {', '.join(cols)}); set {flags[key]} to one of them"
            )
    if cfg.label_column:
        labels = arrow_column(ds, cfg.label_column)
        for start in range(0, len(labels), 50_000):  # a block at a time: corpora may not fit in memory
            for i, value in enumerate(labels.slice(start, 50_000).to_pylist(), start):
                if value is None or (isinstance(value, str) and not value.strip()):
                    raise DataError(
                        f"row {i + 1} of {source} has no value in label column '{cfg.label_column}'; "
                        "fill it in or remove the row"
                    )
    text_col, label_col = cfg.text_column, cfg.label_column

    def convert(batch: dict[str, list]) -> dict[str, list[str]]:
        out = {"text": ["" if t is None else str(t) for t in batch[text_col]]}
        if label_col:
            out["label"] = [str(v) for v in batch[label_col]]
        return out

    # Explicit features: otherwise a same-named input column (an int "label") casts the strings back.
    features = datasets.Features({"text": datasets.Value("string")})
    if label_col:
        features["label"] = datasets.Value("string")
    return ds.map(convert, batched=True, batch_size=10_000, remove_columns=cols, features=features)


def arrow_column(ds: datasets.Dataset, name: str) -> pa.ChunkedArray:
    """One column as Arrow, in one call (``ds[name]`` iterates row by row in datasets >= 4)."""
    return ds.with_format("arrow")[name]


def read_synthetic(source: str, cfg: DataConfig, n: int | None = None, seed: int | None = None) -> datasets.Dataset:
    from textvae.data.synthetic import FACTORS, generate

    if cfg.label_column and cfg.label_column not in FACTORS:
        raise DataError(
            f"the synthetic corpus has no factor '{cfg.label_column}' (factors: {', '.join(FACTORS)}); "
            "set data.label_column to one of them"
        )
    sentences = generate(cfg.synthetic_size if n is None else n, seed=cfg.seed if seed is None else seed)
    cols = {"text": [s.text for s in sentences]}
    if cfg.label_column:
        cols["label"] = [str(s.factors[cfg.label_column]) for s in sentences]
    return datasets.Dataset.from_dict(cols)


# -- paragraphs ------------------------------------------------------------------------------------------


def _paragraphs(text: str) -> list[str]:
    """Blank-line separated blocks (inner line breaks become spaces), or one paragraph per line."""
    if re.search(r"\n[ \t]*\r?\n", text):
        blocks = re.split(r"\n[ \t]*\r?\n", text)
        return [" ".join(b.split()) for b in blocks if b.strip()]
    return [line.strip() for line in text.splitlines() if line.strip()]


def split_sentences(paragraphs: list[str]) -> list[str]:
    """Split paragraphs into sentences with Punkt trained unsupervised on the paragraphs themselves.

    No pretrained model is needed (nothing is downloaded): Punkt learns abbreviations, collocations and
    sentence starters from the text it is about to split.
    """
    from nltk.tokenize.punkt import PunktSentenceTokenizer, PunktTrainer

    paragraphs = [p for p in paragraphs if p.strip()]
    if not paragraphs:
        return []
    # Default settings on purpose: INCLUDE_ALL_COLLOCS would learn "left. He" as a collocation in small
    # texts and stop splitting real sentence boundaries.
    trainer = PunktTrainer()
    trainer.train("\n\n".join(paragraphs), finalize=False)
    trainer.finalize_training()
    splitter = PunktSentenceTokenizer(trainer.get_params())
    return [s.strip() for p in paragraphs for s in splitter.tokenize(p) if s.strip()]
