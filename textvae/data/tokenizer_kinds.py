"""The four tokenizer kinds, each a small class over the library that does the work well:

* ``word``    -- 🤗 ``tokenizers`` WordLevel over whitespace-separated words, ``<unk>`` for the rest;
* ``bpe``     -- 🤗 ``tokenizers`` byte-level BPE: every string round-trips exactly, no ``<unk>`` is needed;
* ``unigram`` -- ``sentencepiece`` unigram model (``spm.model``);
* ``pretrained`` -- any ``transformers`` tokenizer from a local folder (or hub name), kept as it is.

The trained kinds use :data:`~textvae.data.tokenizer_base.SPECIALS` at their fixed ids; ``train`` builds one
from a stream of texts (read once, never stored) and a :class:`DataConfig`.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from textvae.config import DataConfig
from textvae.data.tokenizer_base import BOS_ID, EOS_ID, PAD_ID, SPECIALS, UNK_ID, RemoteCodeRefused, TextTokenizer
from textvae.errors import DataError

_TOKENIZERS_FILE = "tokenizer.json"  # word / bpe
_SPM_FILE = "spm.model"  # unigram
# transformers' save_pretrained writes its own tokenizer_config.json, so it gets a folder of its own.
_PRETRAINED_DIR = "pretrained"
_UNIGRAM_MAX_SENTENCES = 2_000_000
_ODD_SEPARATORS = re.compile("[\x1c-\x1f]")


def _trainer_settings(cfg: DataConfig) -> dict[str, Any]:
    """What the 🤗 ``tokenizers`` trainers of both kinds are given: size bounds, our specials, no bar."""
    return {
        "vocab_size": cfg.vocab_size,
        "min_frequency": cfg.min_frequency,
        "special_tokens": list(SPECIALS),
        "show_progress": False,
    }


def _required(path: Path) -> Path:
    if not path.exists():
        raise FileNotFoundError(path.name + ("/" if not path.suffix else ""))
    return path


class _HFTokenizersKind(TextTokenizer):
    """A kind backed by a 🤗 ``tokenizers.Tokenizer`` saved as ``tokenizer.json``."""

    @property
    def vocab_size(self) -> int:
        return self._backend.get_vocab_size(with_added_tokens=True)

    def vocab(self) -> dict[str, int]:
        return dict(self._backend.get_vocab())

    def _decode(self, ids: list[int]) -> str:
        return self._backend.decode(ids, skip_special_tokens=False)

    def _save_files(self, directory: Path) -> None:
        self._backend.save(str(directory / _TOKENIZERS_FILE))

    @classmethod
    def _load_backend(cls, directory: Path, trust_remote_code: bool) -> Any:
        from tokenizers import Tokenizer

        return Tokenizer.from_file(str(_required(directory / _TOKENIZERS_FILE)))


class WordTokenizer(_HFTokenizersKind):
    kind = "word"
    word_level = True

    def __init__(self, backend: Any, pad_id: int, bos_id: int, eos_id: int, unk_id: int) -> None:
        super().__init__(backend, pad_id, bos_id, eos_id, unk_id)
        self._word_vocab = backend.get_vocab()  # for the pure-Python fast path

    @classmethod
    def train(cls, texts: Iterable[str], cfg: DataConfig) -> WordTokenizer:
        from tokenizers import Tokenizer, models, pre_tokenizers, trainers

        tok = Tokenizer(models.WordLevel(unk_token=SPECIALS[UNK_ID]))
        tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        trainer = trainers.WordLevelTrainer(**_trainer_settings(cfg))
        # Corpora such as PTB already contain "<unk>". Counted as a word it would get a second id and leave a
        # hole at 3, so special tokens are removed from the training text: in use they map to their own ids.
        specials = set(SPECIALS)
        tok.train_from_iterator((" ".join(w for w in t.split() if w not in specials) for t in texts), trainer=trainer)
        return cls(tok, PAD_ID, BOS_ID, EOS_ID, UNK_ID)

    def _encode_batch(self, texts: list[str]) -> list[list[int]]:
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


class BPETokenizer(_HFTokenizersKind):
    kind = "bpe"

    @classmethod
    def train(cls, texts: Iterable[str], cfg: DataConfig) -> BPETokenizer:
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

        alphabet = pre_tokenizers.ByteLevel.alphabet()  # 256 byte symbols: any text is encodable
        if cfg.vocab_size < len(alphabet) + len(SPECIALS):
            raise DataError(
                f"the bpe tokenizer is byte-level and needs data.vocab_size >= {len(alphabet) + len(SPECIALS)} "
                f"(256 bytes + 4 specials); got {cfg.vocab_size}"
            )
        tok = Tokenizer(models.BPE(unk_token=SPECIALS[UNK_ID]))
        # add_prefix_space=False keeps decode(encode(s)) == s exactly (no invented leading space).
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(initial_alphabet=alphabet, **_trainer_settings(cfg))
        tok.train_from_iterator(texts, trainer=trainer)
        return cls(tok, PAD_ID, BOS_ID, EOS_ID, UNK_ID)

    def _encode_batch(self, texts: list[str]) -> list[list[int]]:
        tok = self._backend
        fast = getattr(tok, "encode_batch_fast", tok.encode_batch)  # skips offset tracking, never used here
        return [e.ids for e in fast(texts, add_special_tokens=False)]


class UnigramTokenizer(TextTokenizer):
    kind = "unigram"

    @classmethod
    def train(cls, texts: Iterable[str], cfg: DataConfig) -> UnigramTokenizer:
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
                unk_surface=SPECIALS[UNK_ID],  # decode shows <unk> (as word and bpe do), not " ⁇ "
                pad_id=PAD_ID,
                bos_id=BOS_ID,
                eos_id=EOS_ID,
                unk_id=UNK_ID,
                pad_piece=SPECIALS[PAD_ID],
                bos_piece=SPECIALS[BOS_ID],
                eos_piece=SPECIALS[EOS_ID],
                unk_piece=SPECIALS[UNK_ID],
                minloglevel=2,  # warnings and errors only
                num_threads=4,
            )
        except RuntimeError as e:
            reason = str(e).splitlines()[0] if str(e) else "unknown error"
            count = getattr(texts, "count", "the")
            raise DataError(
                f"sentencepiece could not train on {count} sentences ({reason}); "
                "provide more text or lower data.vocab_size"
            ) from None
        return cls(spm.SentencePieceProcessor(model_proto=model.getvalue()), PAD_ID, BOS_ID, EOS_ID, UNK_ID)

    @property
    def vocab_size(self) -> int:
        return self._backend.get_piece_size()

    def vocab(self) -> dict[str, int]:
        sp = self._backend
        return {sp.id_to_piece(i): i for i in range(sp.get_piece_size())}

    def _encode_batch(self, texts: list[str]) -> list[list[int]]:
        """SentencePiece ids, with a literal ``<unk>`` in the text (PTB style) mapped to the unk id.

        SentencePiece reserves the ``<unk>`` piece and never matches it in input, so such texts are cut at
        each ``<unk>`` and the pieces encoded separately; without a dummy prefix, whitespace is explicit
        and the concatenation decodes back to the original text.
        """
        sp, unk = self._backend, SPECIALS[UNK_ID]
        if not any(unk in t for t in texts):
            return sp.encode(texts, out_type=int)
        parts = [t.split(unk) for t in texts]
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

    def _decode(self, ids: list[int]) -> str:
        return self._backend.decode(ids)

    def _save_files(self, directory: Path) -> None:
        (directory / _SPM_FILE).write_bytes(self._backend.serialized_model_proto())

    @classmethod
    def _load_backend(cls, directory: Path, trust_remote_code: bool) -> Any:
        import sentencepiece as spm

        return spm.SentencePieceProcessor(model_proto=_required(directory / _SPM_FILE).read_bytes())


class PretrainedTokenizer(TextTokenizer):
    kind = "pretrained"

    @classmethod
    def from_config(cls, cfg: DataConfig) -> PretrainedTokenizer:
        """Wrap ``AutoTokenizer.from_pretrained(cfg.pretrained_tokenizer)``, mapping its specials onto ours."""
        name = cfg.pretrained_tokenizer
        if not name:
            raise DataError("data.tokenizer=pretrained needs data.pretrained_tokenizer (a local tokenizer folder)")
        try:
            hf = auto_tokenizer(name, trust_remote_code=False)
        except RemoteCodeRefused as e:
            raise DataError(f"data.pretrained_tokenizer: {e}") from None
        except Exception as e:  # missing folder, offline hub, unreadable files: the user's to fix
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise DataError(f"could not load tokenizer '{name}' ({reason}); give a local tokenizer folder") from None
        return cls.wrap(hf, name)

    @classmethod
    def wrap(cls, hf: Any, name: str = "pretrained tokenizer") -> PretrainedTokenizer:
        """A 🤗 tokenizer with its specials mapped onto ours: begin = bos (else cls), end = eos (else sep);
        pad and unknown fall back to the end token."""
        eos = hf.eos_token_id if hf.eos_token_id is not None else hf.sep_token_id
        bos = hf.bos_token_id if hf.bos_token_id is not None else hf.cls_token_id
        if eos is None:
            raise DataError(f"{name} has neither an eos nor a sep token; choose a tokenizer that has one")
        bos = eos if bos is None else bos  # GPT-2 style: one token both opens and closes
        pad = hf.pad_token_id if hf.pad_token_id is not None else eos
        unk = hf.unk_token_id if hf.unk_token_id is not None else eos
        return cls(hf, pad, bos, eos, unk)

    @property
    def vocab_size(self) -> int:
        # Some tokenizers' ids have gaps, so len() alone could be smaller than the largest id + 1.
        return max(len(self._backend), max(self._backend.get_vocab().values(), default=-1) + 1)

    def vocab(self) -> dict[str, int]:
        return dict(self._backend.get_vocab())

    def _encode_batch(self, texts: list[str]) -> list[list[int]]:
        return self._backend(texts, add_special_tokens=False, verbose=False)["input_ids"]

    def _decode(self, ids: list[int]) -> str:
        return self._backend.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)

    def _save_files(self, directory: Path) -> None:
        self._backend.save_pretrained(str(directory / _PRETRAINED_DIR))

    @classmethod
    def _load_backend(cls, directory: Path, trust_remote_code: bool) -> Any:
        return auto_tokenizer(str(_required(directory / _PRETRAINED_DIR)), trust_remote_code)


def auto_tokenizer(source: str, trust_remote_code: bool) -> Any:
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
