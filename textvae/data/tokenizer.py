"""Subword and word tokenizers, trained on the training split and saved inside the model directory.

Four kinds share one interface (:class:`TextTokenizer`):

* ``word``    -- 🤗 ``tokenizers`` WordLevel over whitespace-separated words, ``<unk>`` for the rest;
* ``bpe``     -- 🤗 ``tokenizers`` byte-level BPE: every string round-trips exactly, no ``<unk>`` is needed;
* ``unigram`` -- ``sentencepiece`` unigram model (``spm.model``);
* ``pretrained`` -- any ``transformers`` tokenizer from a local folder (or hub name), kept as it is.

Trained kinds use ``<pad>`` = 0, ``<s>`` = 1, ``</s>`` = 2, ``<unk>`` = 3. Token ids never include the
begin/end tokens; the model adds them. ``tokenizer_config.json`` records the kind, special ids, vocabulary
size and a fingerprint of the vocabulary, which :meth:`TextTokenizer.load` checks.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from textvae.config import DataConfig
from textvae.errors import DataError, ModelDirError

SPECIALS = ("<pad>", "<s>", "</s>", "<unk>")
PAD_ID, BOS_ID, EOS_ID, UNK_ID = 0, 1, 2, 3
CONFIG_FILE = "tokenizer_config.json"
_TOKENIZERS_FILE = "tokenizer.json"  # word / bpe
_SPM_FILE = "spm.model"  # unigram
# transformers' save_pretrained writes its own tokenizer_config.json, so it gets a folder of its own.
_PRETRAINED_DIR = "pretrained"
KINDS = ("word", "bpe", "unigram", "pretrained")
_UNIGRAM_MAX_SENTENCES = 2_000_000
_ODD_SEPARATORS = re.compile("[\x1c-\x1f]")


class TextTokenizer:
    """Text <-> token ids for one of the four kinds; build with :func:`train_tokenizer` or :meth:`load`."""

    def __init__(self, kind: str, backend: Any, pad_id: int, bos_id: int, eos_id: int, unk_id: int) -> None:
        self.kind = kind
        self._backend = backend  # tokenizers.Tokenizer | SentencePieceProcessor | transformers tokenizer
        self.pad_id, self.bos_id, self.eos_id, self.unk_id = pad_id, bos_id, eos_id, unk_id
        self._skip = {pad_id, bos_id, eos_id}  # dropped by decode; <unk> stays visible
        self._word_vocab = backend.get_vocab() if kind == "word" else {}  # for the pure-Python fast path

    def __repr__(self) -> str:
        return f"TextTokenizer(kind={self.kind!r}, vocab_size={self.vocab_size})"

    @property
    def vocab_size(self) -> int:
        """Number of ids: every id returned by :meth:`encode` is below it."""
        if self.kind in ("word", "bpe"):
            return self._backend.get_vocab_size(with_added_tokens=True)
        if self.kind == "unigram":
            return self._backend.get_piece_size()
        # Some tokenizers' ids have gaps, so len() alone could be smaller than the largest id + 1.
        return max(len(self._backend), max(self._backend.get_vocab().values(), default=-1) + 1)

    def vocab(self) -> dict[str, int]:
        """Token -> id for the whole vocabulary."""
        if self.kind == "unigram":
            sp = self._backend
            return {sp.id_to_piece(i): i for i in range(sp.get_piece_size())}
        return dict(self._backend.get_vocab())

    def fingerprint(self) -> str:
        """SHA-256 (hex) of the vocabulary, canonically serialised: equal iff token -> id maps are equal."""
        items = sorted(self.vocab().items(), key=lambda kv: (kv[1], kv[0]))
        return hashlib.sha256(json.dumps(items, ensure_ascii=False).encode("utf-8")).hexdigest()

    # -- encoding ------------------------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        """Token ids of one sentence, without begin/end tokens."""
        return self.encode_batch([text])[0]

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        """Token ids of many sentences at once (the backends' batched, multi-threaded paths)."""
        texts = list(texts)
        try:
            return self._encode_batch(texts)
        except (UnicodeEncodeError, TypeError):
            # Lone surrogates (e.g. from a badly decoded file) can't cross into Rust/C++: replace them.
            clean = [t.encode("utf-8", "replace").decode("utf-8") for t in texts]
            return self._encode_batch(clean)

    def _encode_batch(self, texts: list[str]) -> list[list[int]]:
        if not texts:
            return []
        if self.kind == "word":
            return self._encode_words(texts)
        if self.kind == "bpe":
            tok = self._backend
            # encode_batch_fast skips offset tracking, which we never use.
            fast = getattr(tok, "encode_batch_fast", tok.encode_batch)
            return [e.ids for e in fast(texts, add_special_tokens=False)]
        if self.kind == "unigram":
            return self._encode_unigram(texts)
        return self._backend(texts, add_special_tokens=False, verbose=False)["input_ids"]

    def _encode_words(self, texts: list[str]) -> list[list[int]]:
        """Word-level ids by dict lookup: 3-10x faster than ``tokenizers`` here, with the same result.

        The backend differs from ``str.split`` + lookup only where a special token is glued to other
        characters (``a<unk>b`` is three tokens there) or on the separators U+001C..U+001F (whitespace to
        Python, not to Rust); such texts go through the backend.
        """
        vocab, unk = self._word_vocab, self.unk_id
        out: list[list[int]] = []
        slow: list[int] = []
        for i, text in enumerate(texts):
            words = text.split()
            if _ODD_SEPARATORS.search(text) or any("<" in w and w not in SPECIALS for w in words):
                slow.append(i)
                out.append([])
            else:
                out.append([vocab.get(w, unk) for w in words])
        if slow:
            encs = self._backend.encode_batch([texts[i] for i in slow], add_special_tokens=False)
            for i, enc in zip(slow, encs):
                out[i] = enc.ids
        return out

    def _encode_unigram(self, texts: list[str]) -> list[list[int]]:
        """SentencePiece ids, with a literal ``<unk>`` in the text (PTB style) mapped to the unk id.

        SentencePiece reserves the ``<unk>`` piece and never matches it in input, so such texts are cut at
        each ``<unk>`` and the pieces encoded separately; without a dummy prefix, whitespace is explicit
        and the concatenation decodes back to the original text.
        """
        sp = self._backend
        if not any("<unk>" in t for t in texts):
            return sp.encode(texts, out_type=int)
        parts = [t.split("<unk>") for t in texts]
        flat = sp.encode([p for ps in parts for p in ps], out_type=int)
        out, k = [], 0
        for ps in parts:
            ids: list[int] = []
            for j in range(len(ps)):
                if j:
                    ids.append(self.unk_id)
                ids.extend(flat[k + j])
            out.append(ids)
            k += len(ps)
        return out

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids``; pad/begin/end tokens are skipped (``<unk>`` is kept), words joined by spaces."""
        ids = [int(i) for i in ids if int(i) not in self._skip]
        if self.kind in ("word", "bpe"):
            return self._backend.decode(ids, skip_special_tokens=False)
        if self.kind == "unigram":
            return self._backend.decode(ids)
        return self._backend.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)

    # -- persistence ---------------------------------------------------------------------------------
    def save(self, directory: str | Path) -> None:
        """Write the backend's files and ``tokenizer_config.json`` into ``directory`` (created if needed)."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        if self.kind in ("word", "bpe"):
            self._backend.save(str(d / _TOKENIZERS_FILE))
        elif self.kind == "unigram":
            (d / _SPM_FILE).write_bytes(self._backend.serialized_model_proto())
        else:
            self._backend.save_pretrained(str(d / _PRETRAINED_DIR))
        meta = {
            "kind": self.kind,
            "pad_id": self.pad_id,
            "bos_id": self.bos_id,
            "eos_id": self.eos_id,
            "unk_id": self.unk_id,
            "vocab_size": self.vocab_size,
            "fingerprint": self.fingerprint(),
        }
        (d / CONFIG_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, directory: str | Path, trust_remote_code: bool = False) -> TextTokenizer:
        """Load a tokenizer written by :meth:`save`; :class:`ModelDirError` if files are missing or damaged.

        ``trust_remote_code`` comes from the caller, never from the directory: a pretrained tokenizer whose
        files point (``auto_map``) at Python code of their own is refused unless it is True."""
        d = Path(directory)
        cfg_path = d / CONFIG_FILE
        if not cfg_path.is_file():
            raise ModelDirError(f"{d} has no {CONFIG_FILE}; give a textvae model directory saved by training")
        try:
            meta = json.loads(cfg_path.read_text(encoding="utf-8"))
            kind = meta["kind"]
            ids = [int(meta[k]) for k in ("pad_id", "bos_id", "eos_id", "unk_id")]
        except (ValueError, KeyError, TypeError) as e:
            raise ModelDirError(f"{cfg_path} is damaged ({e}); retrain or restore the model directory") from None
        if kind not in KINDS:
            raise ModelDirError(f"{cfg_path} names an unknown tokenizer kind {kind!r}; retrain the model")
        try:
            backend = _load_backend(kind, d, trust_remote_code)
        except FileNotFoundError as e:
            raise ModelDirError(f"{d} is missing tokenizer file {e}; restore it or retrain") from None
        except RemoteCodeRefused as e:
            raise ModelDirError(str(e)) from None
        except Exception as e:  # each backend has its own parse errors; all mean a damaged file
            raise ModelDirError(f"tokenizer files in {d} are damaged ({type(e).__name__}); retrain") from None
        tok = cls(kind, backend, *ids)
        if meta.get("fingerprint") not in (None, tok.fingerprint()):
            raise ModelDirError(f"tokenizer in {d} does not match its {CONFIG_FILE} fingerprint; retrain")
        return tok


class RemoteCodeRefused(Exception):
    """A 🤗 tokenizer that needs its own Python code, loaded without ``trust_remote_code``."""


def _auto_tokenizer(source: str, trust_remote_code: bool) -> Any:
    """``AutoTokenizer.from_pretrained`` with ``trust_remote_code`` always passed explicitly: left at None,
    transformers would ask on stdin whether to run the folder's code, and a "y" would run it."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
    except ValueError as e:
        if not trust_remote_code and "trust_remote_code" in str(e):
            raise RemoteCodeRefused(
                f"the tokenizer in {source} ships Python code of its own (auto_map); it was not run. Load it "
                "with trust_remote_code=True only if you trust its source"
            ) from None
        raise


def _load_backend(kind: str, d: Path, trust_remote_code: bool = False) -> Any:
    if kind in ("word", "bpe"):
        from tokenizers import Tokenizer

        path = d / _TOKENIZERS_FILE
        if not path.is_file():
            raise FileNotFoundError(path.name)
        return Tokenizer.from_file(str(path))
    if kind == "unigram":
        import sentencepiece as spm

        path = d / _SPM_FILE
        if not path.is_file():
            raise FileNotFoundError(path.name)
        return spm.SentencePieceProcessor(model_proto=path.read_bytes())
    path = d / _PRETRAINED_DIR
    if not path.is_dir():
        raise FileNotFoundError(path.name + "/")
    return _auto_tokenizer(str(path), trust_remote_code)


# -- training --------------------------------------------------------------------------------------------


def train_tokenizer(texts: Iterable[str], cfg: DataConfig) -> TextTokenizer:
    """Train a ``cfg.tokenizer`` tokenizer on ``texts`` (the training split), or load a pretrained one.

    ``cfg.vocab_size`` bounds trained vocabularies, specials included. Empty input, or input from which
    nothing beyond the special tokens can be learned, raises :class:`DataError`.
    """
    kind = cfg.tokenizer
    if kind == "pretrained":
        return _pretrained(cfg)
    if kind not in KINDS:
        raise DataError(f"data.tokenizer must be one of {', '.join(KINDS)}; got {kind!r}")
    if cfg.vocab_size < len(SPECIALS) + 1:
        raise DataError(f"data.vocab_size must be at least {len(SPECIALS) + 1}; got {cfg.vocab_size}")
    nonblank = (t for t in texts if t and t.strip())
    first = next(nonblank, None)
    if first is None:
        raise DataError("cannot train a tokenizer on no text; check the training corpus (data.train)")
    # ``texts`` may be a stream over a corpus larger than memory: it is read once, never stored.
    stream = _Counted(itertools.chain([first], nonblank))
    tok = {"word": _train_word, "bpe": _train_bpe, "unigram": _train_unigram}[kind](stream, cfg)
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


def _train_word(texts: Iterable[str], cfg: DataConfig) -> TextTokenizer:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    trainer = trainers.WordLevelTrainer(
        vocab_size=cfg.vocab_size,
        min_frequency=cfg.min_frequency,
        special_tokens=list(SPECIALS),
        show_progress=False,
    )
    # Corpora such as PTB already contain "<unk>". Counted as a word it would get a second id and leave a
    # hole at 3, so special tokens are removed from the training text: in use they map to their own ids.
    specials = set(SPECIALS)
    words = (" ".join(w for w in t.split() if w not in specials) for t in texts)
    tok.train_from_iterator(words, trainer=trainer)
    return TextTokenizer("word", tok, PAD_ID, BOS_ID, EOS_ID, UNK_ID)


def _train_bpe(texts: Iterable[str], cfg: DataConfig) -> TextTokenizer:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    alphabet = pre_tokenizers.ByteLevel.alphabet()  # 256 byte symbols: any text is encodable
    if cfg.vocab_size < len(alphabet) + len(SPECIALS):
        raise DataError(
            f"the bpe tokenizer is byte-level and needs data.vocab_size >= {len(alphabet) + len(SPECIALS)} "
            f"(256 bytes + 4 specials); got {cfg.vocab_size}"
        )
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    # add_prefix_space=False keeps decode(encode(s)) == s exactly (no invented leading space).
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=cfg.vocab_size,
        min_frequency=cfg.min_frequency,
        special_tokens=list(SPECIALS),
        initial_alphabet=alphabet,
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return TextTokenizer("bpe", tok, PAD_ID, BOS_ID, EOS_ID, UNK_ID)


def _train_unigram(texts: _Counted, cfg: DataConfig) -> TextTokenizer:
    import sentencepiece as spm

    model = io.BytesIO()
    spm.set_random_generator_seed(cfg.seed)
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(texts),
            # sentencepiece keeps its training sentences in memory: a (seeded) sample of at most this many
            input_sentence_size=_UNIGRAM_MAX_SENTENCES,
            shuffle_input_sentence=True,
            model_writer=model,
            model_type="unigram",
            vocab_size=cfg.vocab_size,
            hard_vocab_limit=False,  # small corpora: a smaller vocabulary instead of an error
            character_coverage=1.0,
            # identity normalisation, spaces kept: decode(encode(s)) == s for ordinary text
            normalization_rule_name="identity",
            remove_extra_whitespaces=False,
            add_dummy_prefix=False,  # a sentence-initial word has no leading "▁" (like byte-level BPE)
            unk_surface="<unk>",  # decode shows <unk> (as word and bpe do), not " ⁇ "
            pad_id=PAD_ID,
            bos_id=BOS_ID,
            eos_id=EOS_ID,
            unk_id=UNK_ID,
            pad_piece="<pad>",
            bos_piece="<s>",
            eos_piece="</s>",
            unk_piece="<unk>",
            minloglevel=2,  # warnings and errors only
            num_threads=4,
        )
    except RuntimeError as e:
        reason = str(e).splitlines()[0] if str(e) else "unknown error"
        raise DataError(
            f"sentencepiece could not train on {texts.count} sentences ({reason}); "
            "provide more text or lower data.vocab_size"
        ) from None
    return TextTokenizer("unigram", spm.SentencePieceProcessor(model_proto=model.getvalue()), 0, 1, 2, 3)


def _pretrained(cfg: DataConfig) -> TextTokenizer:
    """Wrap ``AutoTokenizer.from_pretrained(cfg.pretrained_tokenizer)``, mapping its specials onto ours."""
    name = cfg.pretrained_tokenizer
    if not name:
        raise DataError("data.tokenizer=pretrained needs data.pretrained_tokenizer (a local tokenizer folder)")
    try:
        hf = _auto_tokenizer(name, trust_remote_code=False)
    except RemoteCodeRefused as e:
        raise DataError(f"data.pretrained_tokenizer: {e}") from None
    except Exception as e:  # missing folder, offline hub, unreadable files: the user's to fix
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DataError(f"could not load tokenizer '{name}' ({reason}); give a local tokenizer folder") from None
    return _wrap_pretrained(hf, name)


def _wrap_pretrained(hf: Any, name: str = "pretrained tokenizer") -> TextTokenizer:
    eos = hf.eos_token_id if hf.eos_token_id is not None else hf.sep_token_id
    bos = hf.bos_token_id if hf.bos_token_id is not None else hf.cls_token_id
    if eos is None:
        raise DataError(f"{name} has neither an eos nor a sep token; choose a tokenizer that has one")
    bos = eos if bos is None else bos  # GPT-2 style: one token both opens and closes
    pad = hf.pad_token_id if hf.pad_token_id is not None else eos
    unk = hf.unk_token_id if hf.unk_token_id is not None else eos
    return TextTokenizer("pretrained", hf, pad, bos, eos, unk)
