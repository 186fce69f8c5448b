"""Batching and the tokenized, Arrow-backed corpus (:mod:`textvae.data.batching`, :mod:`textvae.data.dataset`)."""

import dataclasses
import json

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from textvae.config import DataConfig
from textvae.data.batching import batch_indices, collate
from textvae.data.dataset import prepare_corpus

lengths_st = st.lists(st.integers(1, 60), min_size=0, max_size=300)


@settings(max_examples=80, deadline=None)
@given(
    lengths=lengths_st,
    batch_size=st.integers(1, 40),
    budget=st.one_of(st.none(), st.integers(1, 400)),
    shuffle=st.booleans(),
    bucket=st.booleans(),
    seed=st.integers(0, 5),
)
def test_batch_indices_cover_every_sentence_once_within_limits(lengths, batch_size, budget, shuffle, bucket, seed):
    batches = batch_indices(
        lengths, batch_size, seed=seed, epoch=1, shuffle=shuffle, bucket=bucket, max_batch_tokens=budget
    )
    flat = np.concatenate(batches) if batches else np.array([], dtype=np.int64)
    assert sorted(flat.tolist()) == list(range(len(lengths)))
    for b in batches:
        assert 1 <= len(b) <= batch_size
        if budget is not None and len(b) > 1:  # a lone over-long sentence still gets its own batch
            assert len(b) * max(lengths[i] for i in b) <= budget
    again = batch_indices(
        lengths, batch_size, seed=seed, epoch=1, shuffle=shuffle, bucket=bucket, max_batch_tokens=budget
    )
    assert [b.tolist() for b in batches] == [b.tolist() for b in again]  # a pure function of its arguments


def test_bucketing_reduces_padding_and_epochs_differ():
    lengths = np.random.default_rng(0).integers(1, 50, 5_000)

    def padding(batches):
        return sum(len(b) * lengths[b].max() - lengths[b].sum() for b in batches)

    bucketed = batch_indices(lengths, 32, seed=0, epoch=0)
    plain = batch_indices(lengths, 32, seed=0, epoch=0, bucket=False)
    assert padding(bucketed) < 0.2 * padding(plain)
    other = batch_indices(lengths, 32, seed=0, epoch=1)
    assert [b.tolist() for b in bucketed] != [b.tolist() for b in other]


@settings(max_examples=50, deadline=None)
@given(seqs=st.lists(st.lists(st.integers(4, 99), max_size=12), min_size=1, max_size=10))
def test_collate_frames_and_pads(seqs):
    b = collate(seqs, 0, 1, 2)
    assert b.input_ids.shape == (len(seqs), max(len(s) for s in seqs) + 2)
    for row, s, n in zip(b.input_ids.tolist(), seqs, b.lengths.tolist()):
        assert n == len(s) + 2
        assert row[:n] == [1, *s, 2] and all(x == 0 for x in row[n:])
    assert b.num_target_tokens == sum(len(s) + 1 for s in seqs)


def write(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def test_tokenized_splits_read_rows_from_arrow(tmp_path):
    lines = [f"sentence number {i} has {'x ' * (i % 7)}words" for i in range(200)]
    cfg = DataConfig(train=write(tmp_path / "c.txt", lines), valid_fraction=0.1, tokenizer="word")
    data = prepare_corpus(cfg)
    assert len(data.train) + len(data.valid) == 200
    texts = data.train.texts()
    expected = data.tokenizer.encode_batch(texts)
    assert data.train.lengths.tolist() == [len(x) for x in expected]
    idx = np.array([5, 0, 17])
    batch = data.train.collate(idx)
    assert torch.equal(batch.input_ids, collate([expected[i] for i in idx], 0, 1, 2).input_ids)
    seen = sum(len(b) for b in data.valid.batches(batch_size=4))
    assert seen == len(data.valid)
    assert data.valid.texts(3) == data.valid.texts()[:3]


def test_labels_become_ids_and_unseen_validation_labels_are_minus_one(tmp_path):
    rows = [{"text": f"good {i}", "y": "pos"} for i in range(10)] + [
        {"text": f"bad {i}", "y": "neg"} for i in range(10)
    ]
    train = tmp_path / "train.jsonl"
    train.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    valid = tmp_path / "valid.jsonl"
    valid.write_text('{"text": "good x", "y": "pos"}\n{"text": "odd y", "y": "meh"}\n')
    data = prepare_corpus(DataConfig(train=str(train), valid=str(valid), label_column="y"))
    assert data.label_names == ["neg", "pos"]
    assert data.valid.label_ids().tolist() == [1, -1]
    assert data.train.collate([0, 15]).labels.tolist() == [1, 0]


def test_tokenization_is_cached_between_runs(tmp_path):
    lines = [f"line {i} of the corpus" for i in range(500)]
    cfg = DataConfig(train=write(tmp_path / "c.txt", lines), valid_fraction=0.1)
    first = prepare_corpus(cfg)
    again = prepare_corpus(cfg, tokenizer=first.tokenizer)
    files = [f["filename"] for f in first.train.table.cache_files]
    assert files and files == [f["filename"] for f in again.train.table.cache_files]
    other = prepare_corpus(dataclasses.replace(cfg, max_tokens=3), tokenizer=first.tokenizer)
    assert [f["filename"] for f in other.train.table.cache_files] != files
    assert other.train.lengths.max() == 3
