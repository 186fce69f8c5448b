"""The interface every tokenizer kind implements, and what they share: special ids, the surrogate-safe
batched encode, decode without the frame tokens, the vocabulary fingerprint and the saved folder.

A kind is a subclass with a ``kind`` name (:mod:`textvae.data.tokenizer_kinds`); subclasses register
themselves, so :meth:`TextTokenizer.load` finds the class a saved ``tokenizer_config.json`` names.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from textvae.errors import ModelDirError

#: The trained kinds' special tokens, in id order.
SPECIALS = ("<pad>", "<s>", "</s>", "<unk>")
PAD_ID, BOS_ID, EOS_ID, UNK_ID = (SPECIALS.index(t) for t in SPECIALS)
CONFIG_FILE = "tokenizer_config.json"


class RemoteCodeRefused(Exception):
    """A 🤗 tokenizer that needs its own Python code, loaded without ``trust_remote_code``."""


class TextTokenizer:
    """Text <-> token ids. Build one with :func:`textvae.data.tokenizer.train_tokenizer` or :meth:`load`.

    Ids never include the begin/end tokens (the model adds them). ``pad_id``, ``bos_id``, ``eos_id`` and
    ``unk_id`` name the special tokens; ``word_level`` is True when ids are whole words (decoded text then
    needs detokenizing to read like prose).
    """

    kind: ClassVar[str] = ""
    word_level: ClassVar[bool] = False
    _kinds: ClassVar[dict[str, type[TextTokenizer]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.kind:
            TextTokenizer._kinds[cls.kind] = cls

    def __init__(self, backend: Any, pad_id: int, bos_id: int, eos_id: int, unk_id: int) -> None:
        self._backend = backend  # tokenizers.Tokenizer | SentencePieceProcessor | transformers tokenizer
        self.pad_id, self.bos_id, self.eos_id, self.unk_id = pad_id, bos_id, eos_id, unk_id
        self._skip = {pad_id, bos_id, eos_id}  # dropped by decode; <unk> stays visible

    def __repr__(self) -> str:
        return f"TextTokenizer(kind={self.kind!r}, vocab_size={self.vocab_size})"

    @classmethod
    def kinds(cls) -> tuple[str, ...]:
        """The registered kind names."""
        return tuple(cls._kinds)

    # -- what a kind implements ----------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        """Number of ids: every id returned by :meth:`encode` is below it."""
        raise NotImplementedError

    def vocab(self) -> dict[str, int]:
        """Token -> id for the whole vocabulary."""
        raise NotImplementedError

    def _encode_batch(self, texts: list[str]) -> list[list[int]]:
        raise NotImplementedError

    def _decode(self, ids: list[int]) -> str:
        raise NotImplementedError

    def _save_files(self, directory: Path) -> None:
        raise NotImplementedError

    @classmethod
    def _load_backend(cls, directory: Path, trust_remote_code: bool) -> Any:
        """The backend saved in ``directory``; ``FileNotFoundError(name)`` for a missing file."""
        raise NotImplementedError

    # -- shared --------------------------------------------------------------------------------------
    def fingerprint(self) -> str:
        """SHA-256 (hex) of the vocabulary, canonically serialised: equal iff token -> id maps are equal."""
        items = sorted(self.vocab().items(), key=lambda kv: (kv[1], kv[0]))
        return hashlib.sha256(json.dumps(items, ensure_ascii=False).encode("utf-8")).hexdigest()

    def encode(self, text: str) -> list[int]:
        """Token ids of one sentence, without begin/end tokens."""
        return self.encode_batch([text])[0]

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of many sentences at once (the backends' batched, multi-threaded paths)."""
        texts = list(texts)
        if not texts:
            return []
        try:
            return self._encode_batch(texts)
        except (UnicodeEncodeError, TypeError):
            # Lone surrogates (e.g. from a badly decoded file) can't cross into Rust/C++: replace them.
            return self._encode_batch([t.encode("utf-8", "replace").decode("utf-8") for t in texts])

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids``; pad/begin/end tokens are skipped (``<unk>`` is kept)."""
        return self._decode([int(i) for i in ids if int(i) not in self._skip])

    def save(self, directory: str | Path) -> None:
        """Write the backend's files and ``tokenizer_config.json`` into ``directory`` (created if needed)."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        self._save_files(d)
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
        if kind not in cls._kinds:
            raise ModelDirError(f"{cfg_path} names an unknown tokenizer kind {kind!r}; retrain the model")
        kind_cls = cls._kinds[kind]
        try:
            backend = kind_cls._load_backend(d, trust_remote_code)
        except FileNotFoundError as e:
            raise ModelDirError(f"{d} is missing tokenizer file {e}; restore it or retrain") from None
        except RemoteCodeRefused as e:
            raise ModelDirError(str(e)) from None
        except Exception as e:  # each backend has its own parse errors; all mean a damaged file
            raise ModelDirError(f"tokenizer files in {d} are damaged ({type(e).__name__}); retrain") from None
        tok = kind_cls(backend, *ids)
        if meta.get("fingerprint") not in (None, tok.fingerprint()):
            raise ModelDirError(f"tokenizer in {d} does not match its {CONFIG_FILE} fingerprint; retrain")
        return tok
