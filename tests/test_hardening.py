"""Hostile input, property-based: every input either works or gets a clear TextVAEError; nothing crashes
with another exception or hangs. Covers the corpus loader, the tokenizers and the text-in model API."""

import threading
import time

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from textvae.config import DataConfig, ModelConfig
from textvae.data.corpus import load_corpus
from textvae.data.tokenizer import train_tokenizer
from textvae.errors import TextVAEError
from textvae.model.vae import TextVAE

NASTY = [
    "e\u0301\u0301\u0301",  # combining marks
    "\u05e9\u05dc\u05d5\u05dd \u0645\u0631\u062d\u0628\u0627",  # right-to-left scripts
    "\U0001f600\U0001f469\u200d\U0001f4bb",  # emoji, zero-width joiner
    "\x00nul\x01\x07\x1b[31m",  # NUL and control characters
    "\ufeffbom",
    "\u2028line\u2029sep",
    "",
]
hostile_text = st.one_of(st.sampled_from(NASTY), st.text(max_size=40))
line_endings = st.sampled_from(["\n", "\r\n", "\r"])

FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FAST
@given(lines=st.lists(hostile_text, min_size=1, max_size=12), sep=line_endings)
def test_loader_on_arbitrary_unicode_and_line_endings(tmp_path, lines, sep):
    path = tmp_path / "corpus.txt"
    path.write_bytes(sep.join(lines).encode("utf-8", errors="surrogatepass"))
    try:
        corpus = load_corpus(DataConfig(train=str(path), valid_fraction=0.3))
    except TextVAEError as e:
        assert str(e) and "\n" not in str(e)
        return
    for text in corpus.train[:]["text"] + corpus.valid[:]["text"]:
        assert text.strip() and "\n" not in text


@pytest.fixture(scope="module")
def tokenizers():
    texts = ["the cat sat on the mat .", "a dog ran in the park !", "we like green tea"] * 20
    return [train_tokenizer(texts, DataConfig(tokenizer=k, vocab_size=300)) for k in ("word", "bpe", "unigram")]


@settings(max_examples=60, deadline=None)
@given(text=hostile_text)
def test_tokenizers_accept_anything(tokenizers, text):
    for tok in tokenizers:
        ids = tok.encode(text)
        assert all(0 <= i < tok.vocab_size for i in ids)
        assert isinstance(tok.decode(ids), str)


@pytest.fixture(scope="module")
def model(tokenizers):
    tok = tokenizers[0]
    cfg = ModelConfig(vocab_size=tok.vocab_size, embedding_size=8, hidden_size=8, latent_size=2)
    torch.manual_seed(0)
    return TextVAE(cfg, tok).eval()


@settings(max_examples=30, deadline=None)
@given(sentences=st.lists(hostile_text, min_size=1, max_size=4))
def test_text_api_accepts_anything(model, sentences):
    out = model.reconstruct(sentences, strict=False)
    assert len(out) == len(sentences) and all(isinstance(s, str) for s in out)


def test_very_long_line_is_capped(model):
    mu, _ = model.encode_text(["word " * 50_000], strict=False)
    assert mu.shape == (1, 2)


def test_file_being_appended_to(tmp_path):
    path = tmp_path / "growing.txt"
    path.write_text("the first line .\nthe second line .\n")
    stop = threading.Event()

    def append():
        with open(path, "a", encoding="utf-8") as f:
            while not stop.is_set():
                f.write("another line is here .\n")
                f.flush()
                time.sleep(0.001)

    writer = threading.Thread(target=append)
    writer.start()
    try:
        corpus = load_corpus(DataConfig(train=str(path), valid_fraction=0.2))
    finally:
        stop.set()
        writer.join()
    assert len(corpus.train) + len(corpus.valid) >= 2  # a consistent prefix was read


def test_directory_with_an_unreadable_file(tmp_path):
    d = tmp_path / "texts"
    d.mkdir()
    (d / "good.txt").write_text("one sentence here .\nand another one .\n")
    (d / "broken.txt").symlink_to(tmp_path / "does-not-exist.txt")  # unreadable even for root
    with pytest.raises(TextVAEError) as e:
        load_corpus(DataConfig(train=str(d)))
    assert "broken.txt" in str(e.value) or "does-not-exist" in str(e.value)


def test_invalid_utf8_is_a_clear_error(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("caf\xe9\n".encode("latin-1") + b"ok line\n")
    with pytest.raises(TextVAEError, match="UTF-8"):
        load_corpus(DataConfig(train=str(path)))


def test_nul_bytes_in_the_middle_of_a_file(tmp_path):
    path = tmp_path / "nul.txt"
    path.write_bytes(b"good line one\nbad \x00\x00 line\ngood line three\n")
    corpus = load_corpus(DataConfig(train=str(path), valid_fraction=0.3))
    texts = corpus.train[:]["text"] + corpus.valid[:]["text"]
    assert "good line one" in texts and "good line three" in texts
