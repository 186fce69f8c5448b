"""Tests for corpus loading, cleaning and splitting (:mod:`textvae.data.corpus`)."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from textvae.config import DataConfig
from textvae.data.corpus import STAT_KEYS, Corpus, load_corpus, preprocess
from textvae.data.sources import detect_format, read_texts, split_sentences
from textvae.errors import DataError

SENTENCES = [f"sentence number {w} is here" for w in ("one", "two", "three", "four", "five", "six", "seven")]


def cfg(train: str | Path, **kw) -> DataConfig:
    return DataConfig(train=str(train), **kw)


def write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def texts(ds: datasets.Dataset) -> list[str]:
    return ds[:]["text"]


def check_invariants(c: Corpus) -> None:
    s = c.stats
    assert set(s) == set(STAT_KEYS)
    removed = s["blank"] + s["dropped_short"] + s["dropped_long"] + s["duplicates"]
    assert s["read"] == s["train"] + s["valid"] + removed
    assert (len(c.train), len(c.valid)) == (s["train"], s["valid"])


# -- formats -------------------------------------------------------------------------------------------


def test_lines_with_blank_lines(tmp_path):
    path = write(tmp_path / "c.txt", "\n".join(SENTENCES[:3]) + "\n\n   \n" + "\n".join(SENTENCES[3:]) + "\n")
    c = load_corpus(cfg(path))
    check_invariants(c)
    assert c.stats["blank"] == 2 and c.stats["read"] == 9
    assert sorted(texts(c.train) + texts(c.valid)) == sorted(SENTENCES)
    assert c.train.column_names == ["text"] and c.valid.column_names == ["text"]


def test_paragraphs_split_by_punkt(tmp_path):
    text = (
        "The cat sat on the mat. It was warm! Was it asleep?\n"
        "Dr. Smith came home at noon.\n\n"
        "A second paragraph begins here. It has two sentences.\n"
    )
    path = write(tmp_path / "p.txt", text)
    c = load_corpus(cfg(path, format="paragraphs"))
    got = texts(c.train) + texts(c.valid)
    assert "It was warm!" in got and "Was it asleep?" in got and "It has two sentences." in got
    assert c.stats["read"] == 6


def test_paragraphs_one_per_line(tmp_path):
    path = write(tmp_path / "p.txt", "One here. Two here.\nThree here. Four here.\n")
    ds = read_texts(str(path), cfg(path, format="paragraphs"))
    assert texts(ds) == ["One here.", "Two here.", "Three here.", "Four here."]


def test_split_sentences_learns_from_text():
    paras = ["Mr. Brown left. He was late.", "Then it rained. Mr. Brown got wet."] * 3
    out = split_sentences(paras)
    assert out[:2] == ["Mr. Brown left.", "He was late."]
    assert split_sentences([]) == [] and split_sentences(["  "]) == []


def test_jsonl_with_label(tmp_path):
    rows = [{"sentence": s, "y": i % 2, "other": 1} for i, s in enumerate(SENTENCES)]
    path = write(tmp_path / "c.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    c = load_corpus(cfg(path, text_column="sentence", label_column="y"))
    check_invariants(c)
    assert c.train.column_names == ["text", "label"]
    pairs = dict(zip(texts(c.train) + texts(c.valid), c.train[:]["label"] + c.valid[:]["label"], strict=True))
    assert pairs == {s: str(i % 2) for i, s in enumerate(SENTENCES)}


def test_csv_and_tsv_with_label(tmp_path):
    csv = write(tmp_path / "c.csv", 'text,label\n"hello, world",pos\nNA,neg\nnull,pos\n')
    ds = read_texts(str(csv), cfg(csv, label_column="label"))
    assert texts(ds) == ["hello, world", "NA", "null"]  # "NA" stays text
    assert ds[:]["label"] == ["pos", "neg", "pos"]
    tsv = write(tmp_path / "c.tsv", "label\ttext\n1\tgood day\n0\tbad day\n")
    ds = read_texts(str(tsv), cfg(tsv, label_column="label"))
    assert texts(ds) == ["good day", "bad day"] and ds[:]["label"] == ["1", "0"]


def test_dir_of_txt_files(tmp_path):
    d = tmp_path / "corpus"
    (d / "sub").mkdir(parents=True)
    write(d / "a.txt", "first file line\n")
    write(d / "sub" / "b.txt", "second file line\nanother line\n")
    write(d / "empty.txt", "")
    write(d / "notes.md", "not read\n")
    assert detect_format(str(d)) == "dir"
    assert sorted(texts(read_texts(str(d), cfg(d)))) == ["another line", "first file line", "second file line"]


def test_disk_dataset_and_dict(tmp_path):
    ds = datasets.Dataset.from_dict({"text": SENTENCES, "label": list(range(len(SENTENCES)))})
    ds.save_to_disk(str(tmp_path / "one"))
    assert detect_format(str(tmp_path / "one")) == "disk"
    got = read_texts(str(tmp_path / "one"), cfg(tmp_path / "one", label_column="label"))
    assert texts(got) == SENTENCES and got[:]["label"] == [str(i) for i in range(7)]
    dd = datasets.DatasetDict({"train": ds.select(range(4)), "test": ds.select(range(4, 7))})
    dd.save_to_disk(str(tmp_path / "dict"))
    assert texts(read_texts(str(tmp_path / "dict"), cfg(tmp_path / "dict"))) == SENTENCES[:4]


def test_detect_format(tmp_path):
    f = write(tmp_path / "x.data", "a\n")
    assert detect_format(str(f)) == "lines"
    assert detect_format(str(tmp_path / "missing.jsonl")) == "jsonl"  # read_texts then reports it missing
    assert detect_format(str(tmp_path / "a.tsv")) == "csv"
    assert detect_format("ptb_text_only") == "hf" and detect_format("owner/name") == "hf"
    assert detect_format("anything", "csv") == "csv"
    with pytest.raises(DataError, match="file not found"):
        detect_format(str(tmp_path / "missing.txt"))


def test_synthetic_with_label():
    c = load_corpus(DataConfig(train="synthetic", synthetic_size=200, label_column="sentiment", seed=3))
    check_invariants(c)
    assert c.stats["read"] == 200 and c.train.column_names == ["text", "label"]
    assert set(c.train[:]["label"]) == {"positive", "negative"}
    again = load_corpus(DataConfig(train="synthetic", synthetic_size=200, label_column="sentiment", seed=3))
    assert texts(again.valid) == texts(c.valid)


def test_synthetic_valid_is_a_fresh_sample():
    c = load_corpus(DataConfig(train="synthetic", valid="synthetic", synthetic_size=200, valid_fraction=0.1))
    assert len(c.train) == 200 and len(c.valid) == 20
    assert texts(c.valid) != texts(c.train)[:20]


# -- preprocessing ----------------------------------------------------------------------------------------


def prep(lines: list[str], **kw) -> tuple[list[str], dict[str, int]]:
    ds, stats = preprocess(datasets.Dataset.from_dict({"text": lines}), DataConfig(**kw))
    return texts(ds), stats


def test_lowercase_and_treebank():
    out, _ = prep(["  Don't STOP, now!  "], lowercase=True, word_tokenizer="treebank")
    assert out == ["do n't stop , now !"]
    out, _ = prep(["a \t b   c"], word_tokenizer="whitespace")
    assert out == ["a b c"]
    out, _ = prep(["  a \t b  "])  # none: stripped only
    assert out == ["a \t b"]


def test_length_drop_and_truncate():
    lines = ["one", "one two", "one two three", "one two three four five"]
    out, s = prep(lines, min_length=2, max_length=3)
    assert out == ["one two", "one two three"] and (s["dropped_short"], s["dropped_long"]) == (1, 1)
    out, s = prep(lines, min_length=2, max_length=3, length_policy="truncate")
    assert out == ["one two", "one two three", "one two three"]
    assert (s["dropped_short"], s["dropped_long"], s["truncated"]) == (1, 0, 1)


def test_dedup_keeps_first():
    out, s = prep(["b", "a", "b", "c", "a"], dedup=True)
    assert out == ["b", "a", "c"] and s["duplicates"] == 2
    out, s = prep(["b", "a", "b"])
    assert out == ["b", "a", "b"] and s["duplicates"] == 0


def test_very_long_line(tmp_path):
    many_words = ("word " * 20_000).strip()  # 100,000 characters
    one_word = "x" * 100_000
    path = write(tmp_path / "long.txt", f"short line here\n{many_words}\n{one_word}\nanother short one\n")
    c = load_corpus(cfg(path, max_length=10))
    assert c.stats["dropped_long"] == 1 and c.stats["read"] == 4
    c = load_corpus(cfg(path, max_length=10, length_policy="truncate", word_tokenizer="treebank"))
    assert c.stats["truncated"] == 1
    assert max(len(t.split()) for t in texts(c.train) + texts(c.valid)) == 10


lines_strategy = st.lists(
    st.one_of(
        st.text(max_size=40),
        st.sampled_from(["", " ", "\t", "a b c", "A  B", "x y z w v u t", "é ü ñ 🙂"]),
    ),
    max_size=25,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lines=lines_strategy,
    min_length=st.integers(1, 3),
    max_length=st.integers(3, 6),
    policy=st.sampled_from(["drop", "truncate"]),
    tokenizer=st.sampled_from(["none", "whitespace", "treebank"]),
    dedup=st.booleans(),
    lowercase=st.booleans(),
)
def test_preprocess_properties(lines, min_length, max_length, policy, tokenizer, dedup, lowercase):
    out, s = prep(
        lines,
        min_length=min_length,
        max_length=max_length,
        length_policy=policy,
        word_tokenizer=tokenizer,
        dedup=dedup,
        lowercase=lowercase,
    )
    assert all(t and t == t.strip() and min_length <= len(t.split()) <= max_length for t in out)
    assert s["read"] == len(lines)
    assert s["read"] == len(out) + s["blank"] + s["dropped_short"] + s["dropped_long"] + s["duplicates"]
    assert s["blank"] >= sum(1 for x in lines if not x.strip())
    if dedup:
        assert len(set(out)) == len(out)
    if policy == "drop":
        assert s["truncated"] == 0
    else:
        assert s["dropped_long"] == 0


# -- splitting ----------------------------------------------------------------------------------------------


def test_seeded_split(tmp_path):
    path = write(tmp_path / "c.txt", "".join(f"line {i}\n" for i in range(100)))
    a = load_corpus(cfg(path, valid_fraction=0.2, seed=1))
    b = load_corpus(cfg(path, valid_fraction=0.2, seed=1))
    c = load_corpus(cfg(path, valid_fraction=0.2, seed=2))
    assert (len(a.train), len(a.valid)) == (80, 20)
    assert texts(a.valid) == texts(b.valid) and texts(a.valid) != texts(c.valid)
    assert not set(texts(a.train)) & set(texts(a.valid))
    assert sorted(texts(a.train) + texts(a.valid)) == sorted(f"line {i}" for i in range(100))
    tiny = load_corpus(cfg(write(tmp_path / "two.txt", "a\nb\n"), valid_fraction=0.01))
    assert (len(tiny.train), len(tiny.valid)) == (1, 1)


def test_valid_file(tmp_path):
    train = write(tmp_path / "train.txt", "a b\nc d\na b\n")
    valid = write(tmp_path / "valid.txt", "e f\n\ne f\n")
    c = load_corpus(cfg(train, valid=str(valid), dedup=True))
    check_invariants(c)
    assert texts(c.train) == ["a b", "c d"] and texts(c.valid) == ["e f"]
    assert c.stats["duplicates"] == 2 and c.stats["blank"] == 1


# -- bad input ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("", "contains no sentences after preprocessing"),
        ("\n  \n\t\n", "contains no sentences after preprocessing"),
        ("only\n", "provide more data or a separate data.valid"),
    ],
)
def test_empty_or_tiny_corpus(tmp_path, content, match):
    with pytest.raises(DataError, match=match):
        load_corpus(cfg(write(tmp_path / "c.txt", content)))


def test_all_filtered_out(tmp_path):
    with pytest.raises(DataError, match="relax the length limits"):
        load_corpus(cfg(write(tmp_path / "c.txt", "a\nb\n"), min_length=2))


def test_missing_paths(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        load_corpus(cfg(tmp_path / "nope.txt"))
    with pytest.raises(DataError, match="file not found"):
        load_corpus(cfg(tmp_path / "nope.jsonl"))
    good = write(tmp_path / "c.txt", "a\nb\n")
    with pytest.raises(DataError, match="file not found"):
        load_corpus(cfg(good, valid=str(tmp_path / "valid.txt")))


@pytest.mark.parametrize("fmt", ["lines", "paragraphs", "dir", "jsonl"])
def test_not_utf8(tmp_path, fmt):
    bad = b"caf\xe9 au lait\n" if fmt != "jsonl" else b'{"text": "caf\xe9"}\n'
    name = "c.jsonl" if fmt == "jsonl" else "c.txt"
    if fmt == "dir":
        (tmp_path / "d").mkdir()
        write(tmp_path / "d" / "ok.txt", "fine\n")
        path = write(tmp_path / "d" / name, b"fine\n" + bad)
        source = tmp_path / "d"
    else:
        path = source = write(tmp_path / name, b"fine\n" + bad)
    with pytest.raises(DataError, match="is not UTF-8") as e:
        load_corpus(cfg(source, format=fmt))
    assert str(path) in str(e.value) and "line 2" in str(e.value)


def test_missing_columns(tmp_path):
    path = write(tmp_path / "c.jsonl", '{"sentence": "a", "y": 1}\n{"sentence": "b", "y": 0}\n')
    with pytest.raises(DataError, match=r"no column 'text' \(available: sentence, y\); set data.text_column"):
        load_corpus(cfg(path))
    with pytest.raises(DataError, match=r"no column 'label' \(available: sentence, y\); set data.label_column"):
        load_corpus(cfg(path, text_column="sentence", label_column="label"))


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("c.jsonl", '{"text": "a", "y": 1}\n{"text": "b"}\n{"text": "c", "y": 0}\n'),
        ("c.csv", "text,y\na,1\nb,\nc,0\n"),
    ],
)
def test_missing_label_value(tmp_path, name, content):
    with pytest.raises(DataError, match="row 2 of .* has no value in label column 'y'"):
        load_corpus(cfg(write(tmp_path / name, content), label_column="y"))


def test_dir_without_txt(tmp_path):
    (tmp_path / "d").mkdir()
    write(tmp_path / "d" / "a.md", "x\n")
    with pytest.raises(DataError, match="contains no .txt files"):
        load_corpus(cfg(tmp_path / "d"))


def test_other_bad_inputs(tmp_path):
    with pytest.raises(DataError, match="could not read .* as json"):
        load_corpus(cfg(write(tmp_path / "c.jsonl", '{"text": "a"\n')))
    with pytest.raises(DataError, match="label_column is set but .* is plain text"):
        load_corpus(cfg(write(tmp_path / "c.txt", "a\nb\n"), label_column="y"))
    with pytest.raises(DataError, match="synthetic corpus has no factor 'colour'.*sentiment"):
        load_corpus(DataConfig(train="synthetic", synthetic_size=10, label_column="colour"))
    with pytest.raises(DataError, match="is not a directory"):
        load_corpus(cfg(tmp_path / "c.txt", format="dir"))
    with pytest.raises(DataError, match="min_length"):
        load_corpus(cfg(tmp_path / "c.txt", min_length=5, max_length=3))


def test_hub_name_offline():
    # conftest sets HF_DATASETS_OFFLINE, so this fails at once; the message must still say what to do.
    with pytest.raises(DataError, match="file not found: surely_not.*Hugging Face dataset .*is set.*check data.train"):
        load_corpus(DataConfig(train="surely_not_a_local_corpus_xyz"))


def test_a_bare_name_answers_at_once_without_a_network(monkeypatch):
    """``data.train=mycorpus`` (no file, no extension) waited ~25 s on Hub retries before answering."""
    import time

    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there: like no network
    import huggingface_hub.constants as hub_constants

    monkeypatch.setattr(hub_constants, "ENDPOINT", "http://127.0.0.1:9")
    start = time.perf_counter()
    with pytest.raises(DataError, match="file not found: mycorpus.*cannot be reached.*check data.train"):
        load_corpus(DataConfig(train="mycorpus"))
    assert time.perf_counter() - start < 5
