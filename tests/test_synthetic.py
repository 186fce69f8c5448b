"""Tests for the synthetic corpus: determinism, the factor labels, the strict parser, and corpus files."""

from __future__ import annotations

import itertools
import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from textvae.data import synthetic as syn
from textvae.data.synthetic import FACTORS, SyntheticSentence, generate, parse, render, write_corpus

ALL_FACTOR_COMBOS = [dict(zip(FACTORS, values, strict=True)) for values in itertools.product(*FACTORS.values())]
factor_dicts = st.fixed_dictionaries({name: st.sampled_from(values) for name, values in FACTORS.items()})
content_seeds = st.integers(min_value=0, max_value=2**32)

# Words a factor may change (auxiliaries, punctuation, noun and verb forms, the polarity adverb); the rest
# is content. A verb's form is a factor's, but which verb it is stays content (checked separately below).
FACTOR_WORDS = {".", "?", "will", "did", "does", "do"} | set(syn._NOUNS) | set(syn._VERB_FORMS) | set(syn._POLARITY)


@pytest.fixture(scope="module")
def corpus() -> list[SyntheticSentence]:
    return generate(20000, seed=0)


def _content_words(text: str) -> list[str]:
    """The words of ``text`` no factor controls, in order."""
    return [w for w in text.split() if w not in FACTOR_WORDS]


def _verbs(text: str) -> list[int]:
    """Which verbs ``text`` uses (content), whatever their forms."""
    return [syn._VERB_FORMS[w][0] for w in text.split() if w in syn._VERB_FORMS]


def test_factor_schema() -> None:
    assert list(FACTORS) == ["subject", "number", "tense", "sentiment", "type"]
    assert FACTORS["number"] == ("singular", "plural")
    assert FACTORS["tense"] == ("past", "present", "future")
    assert FACTORS["sentiment"] == ("positive", "negative")
    assert FACTORS["type"] == ("statement", "question")
    assert 6 <= len(FACTORS["subject"]) <= 8


def test_generate_is_deterministic_and_prefix_stable() -> None:
    a = generate(300, seed=7)
    assert a == generate(300, seed=7)
    assert a[:50] == generate(50, seed=7)
    assert generate(0) == []
    assert [s.text for s in a] != [s.text for s in generate(300, seed=8)]


def test_generated_sentences_are_parsed_to_their_labels(corpus: list[SyntheticSentence]) -> None:
    for s in corpus:
        assert parse(s.text) == s.factors


def test_corpus_is_diverse_and_covers_every_factor_value(corpus: list[SyntheticSentence]) -> None:
    assert len({s.text for s in corpus}) > 10000
    for name, values in FACTORS.items():
        assert {s.factors[name] for s in corpus} == set(values)


def test_sentence_shape(corpus: list[SyntheticSentence]) -> None:
    vocab = set()
    for s in corpus[:2000]:
        words = s.text.split()
        assert s.text == " ".join(words) == s.text.lower()
        assert 7 <= len(words) <= 13
        assert words[-1] == ("?" if s.factors["type"] == "question" else ".")
        vocab.update(words)
    assert 80 <= len(vocab) <= 120


def test_agreement_examples() -> None:
    f = {"subject": "cat", "number": "singular", "tense": "present", "sentiment": "positive"}
    statement = render({**f, "type": "statement"}, 1).split()
    question = render({**f, "type": "question"}, 1).split()
    assert question[0] == "does" and statement[-1] == "." and question[-1] == "?"
    plural = render({**f, "number": "plural", "type": "question"}, 1).split()
    assert plural[0] == "do" and "cats" in plural
    past = render({**f, "tense": "past", "type": "question"}, 1).split()
    assert past[0] == "did"
    future = render({**f, "tense": "future", "type": "statement"}, 1).split()
    assert "will" in future
    assert "happily" in statement and "sadly" in render({**f, "sentiment": "negative", "type": "question"}, 1)


def test_render_round_trips_all_factor_combinations() -> None:
    for combo in ALL_FACTOR_COMBOS:
        for seed in range(5):
            assert parse(render(combo, seed)) == combo


@settings(max_examples=200, deadline=None)
@given(factors=factor_dicts, content_seed=content_seeds)
def test_parse_inverts_render(factors: dict[str, str], content_seed: int) -> None:
    text = render(factors, content_seed)
    assert parse(text) == factors
    assert parse("  " + text.replace(" ", "   ") + "\n") == factors  # whitespace is normalised


@settings(max_examples=200, deadline=None)
@given(factors=factor_dicts, content_seed=content_seeds, name=st.sampled_from(list(FACTORS)))
def test_changing_one_factor_keeps_the_content(factors: dict[str, str], content_seed: int, name: str) -> None:
    for value in FACTORS[name]:
        changed = {**factors, name: value}
        a, b = render(factors, content_seed), render(changed, content_seed)
        assert parse(b) == changed
        assert _content_words(a) == _content_words(b)
        assert _verbs(a) == _verbs(b)
        assert (a == b) == (value == factors[name])


@settings(max_examples=200, deadline=None)
@given(factors=factor_dicts, content_seed=content_seeds)
def test_sentiment_is_one_word_the_same_across_content(factors: dict[str, str], content_seed: int) -> None:
    flipped = {**factors, "sentiment": "negative" if factors["sentiment"] == "positive" else "positive"}
    a, b = render(factors, content_seed).split(), render(flipped, content_seed).split()
    assert len(a) == len(b)
    diff = [(x, y) for x, y in zip(a, b, strict=True) if x != y]
    polarity = dict(zip(FACTORS["sentiment"], syn._POLARITY, strict=True))
    assert diff == [(polarity[factors["sentiment"]], polarity[flipped["sentiment"]])]


def test_sentiment_word_is_the_only_polar_word(corpus: list[SyntheticSentence]) -> None:
    # Every sentence of a polarity holds its adverb and no other sentence does, so the label is one
    # content-independent binary signal (what attribute vectors need to move it).
    polarity = dict(zip(FACTORS["sentiment"], syn._POLARITY, strict=True))
    for s in corpus:
        words = s.text.split()
        assert [w for w in words if w in syn._POLARITY] == [polarity[s.factors["sentiment"]]]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        ".",
        "?",
        "the cat happily visits the park",  # no final punctuation
        "The cat happily visits the park .",  # not lowercase
        "the cat happily visit the park .",  # agreement
        "the cats happily visits the park .",
        "does the cats happily visit the park ?",
        "do the cat happily visit the park ?",
        "did the cat happily visited the park ?",
        "the cat will happily visits the park .",
        "the cat happily visits the park ?",  # statement word order with a question mark
        "does the cat happily visit the park .",
        "the cat happily visits the park . .",
        "the cat happily visits park .",
        "cat happily visits the park .",
        "the cat visits the park .",  # no polarity adverb
        "the cat happily sadly visits the park .",  # two
        "the cat visits happily the park .",  # adverb after the verb
        "the cat happily will visit the park .",  # adverb before "will"
        "does the cat visit happily the park ?",
        "the red cat happily visits the park .",  # object adjective in the subject slot
        "the cat happily visits the old park .",  # subject adjective in the object slot
        "the cat happily visits the park in the evening .",
        "the cat loves the park .",  # the old grammar's sentiment verbs
        "the cat happily loves the park .",
        "colorless green ideas sleep furiously .",
    ],
)
def test_parse_rejects_non_grammatical_text(text: str) -> None:
    assert parse(text) is None


def test_parse_rejects_altered_sentences(corpus: list[SyntheticSentence]) -> None:
    rng = random.Random(0)
    for s in corpus[:500]:
        words = s.text.split()
        replaced = list(words)
        replaced[rng.randrange(len(words))] = "xyzzy"
        assert parse(" ".join(replaced)) is None
        shuffled = list(words)
        rng.shuffle(shuffled)
        if shuffled != words:
            assert parse(" ".join(shuffled)) is None
        assert parse(" ".join(words[:-2] + words[-1:])) is None  # a word dropped
        assert parse(" ".join(words[:1] + words)) is None  # a word repeated


def test_parse_rejects_word_soup(corpus: list[SyntheticSentence]) -> None:
    vocab = sorted({w for s in corpus[:2000] for w in s.text.split()} - {".", "?"})
    rng = random.Random(1)
    for _ in range(2000):
        soup = rng.choices(vocab, k=rng.randint(4, 12)) + [rng.choice(".?")]
        assert parse(" ".join(soup)) is None


def test_render_rejects_invalid_factors() -> None:
    good = ALL_FACTOR_COMBOS[0]
    with pytest.raises(ValueError):
        render({**good, "tense": "pluperfect"}, 0)
    with pytest.raises(ValueError):
        render({k: v for k, v in good.items() if k != "type"}, 0)
    with pytest.raises(ValueError):
        render({**good, "mood": "happy"}, 0)


def test_sentence_is_hashable_and_copies_factors() -> None:
    factors = dict(ALL_FACTOR_COMBOS[0])
    s = SyntheticSentence(render(factors, 0), factors)
    factors["type"] = "question"
    assert s.factors["type"] == "statement"
    assert len({s, SyntheticSentence(s.text, s.factors)}) == 1


def test_write_corpus_lines(tmp_path) -> None:
    path = write_corpus(tmp_path / "sub" / "train.txt", 100, seed=3)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines == [s.text for s in generate(100, seed=3)]


def test_write_corpus_lines_with_label(tmp_path) -> None:
    path = write_corpus(tmp_path / "train.tsv", 50, seed=1, label="sentiment")
    header, *rows = path.read_text(encoding="utf-8").splitlines()
    assert header == "text\tsentiment"
    for line, s in zip(rows, generate(50, seed=1), strict=True):
        assert line == f"{s.text}\t{s.factors['sentiment']}"
    with pytest.raises(ValueError):
        write_corpus(tmp_path / "bad.txt", 5, label="colour")


def test_write_corpus_jsonl(tmp_path) -> None:
    path = write_corpus(tmp_path / "train.jsonl", 80, seed=2, label="tense", fmt="jsonl")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 80
    for row, s in zip(rows, generate(80, seed=2), strict=True):
        assert row == {"text": s.text, **s.factors}
        assert parse(row["text"]) == {name: row[name] for name in FACTORS}


def test_write_corpus_rejects_unknown_format(tmp_path) -> None:
    with pytest.raises(ValueError):
        write_corpus(tmp_path / "x.csv", 5, fmt="csv")
