"""A synthetic English corpus with known, labelled factors: the embedded default training data.

Every sentence follows one small grammar (``[x]`` is optional, ``|`` separates the two forms)::

    statement:  DET [SUBJ_ADJ] SUBJECT [will] POLARITY VERB_FORM  ODET [OBJ_ADJ] OBJECT [PHRASE] .
    question:   AUX DET [SUBJ_ADJ] SUBJECT POLARITY VERB_BASE     ODET [OBJ_ADJ] OBJECT [PHRASE] ?

The five factors (:data:`FACTORS`) decide only these words:

* ``subject``  -- the subject noun (``cat``, ``teacher``, ...);
* ``number``   -- its form (``cat`` / ``cats``) and the agreement it forces: ``visits`` / ``visit`` in
  present statements, ``does`` / ``do`` in present questions;
* ``tense``    -- ``visited`` / ``visits`` / ``will visit`` in statements, ``did`` / ``does`` / ``will``
  in questions;
* ``sentiment`` -- the polarity adverb before the verb: always ``happily`` (positive) or ``sadly``
  (negative);
* ``type``     -- word order and the final ``.`` / ``?``.

Everything else (determiners, adjectives, which verb, object, trailing phrase) is "content", drawn from a
``content_seed``: :func:`render` with one content seed and different factors gives the same content
words, so a single factor can be changed with the rest held fixed (style-transfer evaluation).

Sentiment is one word, the same word for every sentence of a polarity whatever its content, subject,
number, tense or type, and every other word is neutral (the verbs too: ``visit``, ``paint``, ...). So the
label is unambiguous (no "happily visits the awful park"), :func:`parse` reads it back exactly, and it is
a single binary signal that does not interact with content: a VAE can encode it as one direction of its
latent space, which attribute-vector style transfer needs. (An earlier version carried sentiment in which
member of a content-chosen verb pair was used, ``love`` / ``hate``, ``praise`` / ``blame`` ...; a VAE then
encoded the verb's identity, not its polarity, and sentiment was not linearly recoverable from the code.)
The vocabulary is about 90 words and sentences are 7-13 tokens long, so a small model on a CPU learns
the corpus in minutes.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

FACTORS: dict[str, tuple[str, ...]] = {
    "subject": ("cat", "dog", "teacher", "sister", "farmer", "child", "doctor", "baker"),
    "number": ("singular", "plural"),
    "tense": ("past", "present", "future"),
    "sentiment": ("positive", "negative"),
    "type": ("statement", "question"),
}

_PLURALS = {s: s + "s" for s in FACTORS["subject"]} | {"child": "children"}
# The polarity adverb, indexed like FACTORS["sentiment"]: one word per value, never chosen by content.
_POLARITY = ("happily", "sadly")
# Neutral verbs (content); each is (base, third person singular, past), every form distinct.
_VERBS = (
    ("visit", "visits", "visited"),
    ("watch", "watches", "watched"),
    ("paint", "paints", "painted"),
    ("clean", "cleans", "cleaned"),
    ("find", "finds", "found"),
    ("draw", "draws", "drew"),
    ("see", "sees", "saw"),
    ("leave", "leaves", "left"),
)
# Neutral content words. No determiner depends on number, and there is no "a"/"an" to agree with a noun.
_SUBJ_DETS = ("the", "my", "our", "your", "his", "her", "their")
_SUBJ_ADJS = ("", "old", "young", "little", "tall", "busy")
_OBJ_DETS = ("the", "this", "that", "every", "one")
_OBJ_ADJS = ("", "red", "blue", "small", "big", "new", "wooden", "long")
_OBJECTS = ("park", "car", "house", "garden", "river", "shop", "book", "town", "bridge", "boat", "school")
_PHRASES = ("", "in the morning", "at night", "in winter", "on sundays", "every day", "at home")


@dataclass(frozen=True)
class _Content:
    """Indices of the factor-independent choices in one sentence."""

    subj_det: int
    subj_adj: int
    verb: int
    obj_det: int
    obj_adj: int
    obj: int
    phrase: int


@dataclass(frozen=True)
class SyntheticSentence:
    """One generated sentence and the factor values it was generated with (hashed by ``text``)."""

    text: str
    factors: dict[str, str] = field(hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "factors", dict(self.factors))


def _check_factors(factors: dict[str, str]) -> None:
    if set(factors) != set(FACTORS):
        raise ValueError(f"factors must have exactly the keys {list(FACTORS)}, got {sorted(factors)}")
    for name, value in factors.items():
        if value not in FACTORS[name]:
            raise ValueError(f"factor {name!r} must be one of {FACTORS[name]}, got {value!r}")


def _draw_content(rng: random.Random) -> _Content:
    sizes = (_SUBJ_DETS, _SUBJ_ADJS, _VERBS, _OBJ_DETS, _OBJ_ADJS, _OBJECTS, _PHRASES)
    return _Content(*(rng.randrange(len(options)) for options in sizes))


def _render(f: dict[str, str], c: _Content) -> str:
    """The sentence with factors ``f`` and content ``c`` (factors assumed valid)."""
    singular = f["number"] == "singular"
    noun = f["subject"] if singular else _PLURALS[f["subject"]]
    subject = [_SUBJ_DETS[c.subj_det], _SUBJ_ADJS[c.subj_adj], noun]
    polarity = _POLARITY[FACTORS["sentiment"].index(f["sentiment"])]
    base, third, past = _VERBS[c.verb]
    rest = [_OBJ_DETS[c.obj_det], _OBJ_ADJS[c.obj_adj], _OBJECTS[c.obj], _PHRASES[c.phrase]]
    if f["type"] == "question":
        aux = {"past": "did", "present": "does" if singular else "do", "future": "will"}[f["tense"]]
        words = [aux, *subject, polarity, base, *rest, "?"]
    else:
        will = "will" if f["tense"] == "future" else ""
        verb = {"past": past, "present": third if singular else base, "future": base}[f["tense"]]
        words = [*subject, will, polarity, verb, *rest, "."]
    return " ".join(w for w in words if w)


def render(factors: dict[str, str], content_seed: int) -> str:
    """The sentence with ``factors`` and the content words chosen by ``content_seed``.

    The content depends on ``content_seed`` only, so two calls with the same seed and factors that differ
    in one factor differ only in the words that factor controls. Raises ``ValueError`` on invalid factors.
    """
    _check_factors(factors)
    return _render(factors, _draw_content(random.Random(content_seed)))


def generate(n: int, seed: int = 0) -> list[SyntheticSentence]:
    """``n`` sentences with uniformly random factors and content, deterministic per ``seed``.

    Sentences are drawn independently, so duplicates can occur (rarely: about 2e8 distinct sentences
    exist, and ``generate(20000)`` is over 99% distinct). Each sentence consumes a fixed number of draws,
    so ``generate(n, s)[:m] == generate(m, s)`` for ``m <= n``.
    """
    if n < 0:
        raise ValueError(f"n must be non-negative, got {n}")
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        factors = {name: rng.choice(values) for name, values in FACTORS.items()}
        out.append(SyntheticSentence(_render(factors, _draw_content(rng)), factors))
    return out


# Reverse lookups for the parser: noun form -> (subject, number); verb form -> (verb, form index).
_NOUNS = {s: (s, "singular") for s in FACTORS["subject"]} | {p: (s, "plural") for s, p in _PLURALS.items()}
_VERB_FORMS = {w: (i, k) for i, forms in enumerate(_VERBS) for k, w in enumerate(forms)}
_AUX_TENSE = {"did": "past", "does": "present", "do": "present", "will": "future"}


def _take(options: tuple[str, ...], words: list[str], *, optional: bool = False) -> int | None:
    """Pop ``words[0]`` and return its index in ``options``; an optional slot may be absent (``""``)."""
    if words and words[0] and words[0] in options:
        return options.index(words.pop(0))
    return options.index("") if optional else None


def parse(text: str) -> dict[str, str] | None:
    """The factors of ``text``, or ``None`` if :func:`generate` could not have produced it.

    Whitespace is normalised first; anything else must match the grammar exactly. The words are read
    slot by slot into factors and content, and the result is accepted only if rendering those factors and
    that content gives back the very same sentence, so the parser is exactly as strict as the generator.
    """
    words = text.split()
    if len(words) < 2 or words[-1] not in (".", "?"):
        return None
    normalised, question, words = " ".join(words), words[-1] == "?", words[:-1]
    tense = _AUX_TENSE.get(words.pop(0)) if question else None
    if question and tense is None:
        return None
    subj_det = _take(_SUBJ_DETS, words)
    subj_adj = _take(_SUBJ_ADJS, words, optional=True)
    if subj_det is None or not words or words[0] not in _NOUNS:
        return None
    subject, number = _NOUNS[words.pop(0)]
    if not question and words[:1] == ["will"]:
        tense = "future"
        words.pop(0)
    if not words or words[0] not in _POLARITY:
        return None
    sentiment = FACTORS["sentiment"][_POLARITY.index(words.pop(0))]
    if not words or words[0] not in _VERB_FORMS:
        return None
    verb, form = _VERB_FORMS[words.pop(0)]
    if tense is None:
        tense = "past" if form == 2 else "present"
    obj_det = _take(_OBJ_DETS, words)
    obj_adj = _take(_OBJ_ADJS, words, optional=True)
    obj = _take(_OBJECTS, words)
    phrase = " ".join(words)
    if obj_det is None or obj is None or phrase not in _PHRASES:
        return None
    factors = {
        "subject": subject,
        "number": number,
        "tense": tense,
        "sentiment": sentiment,
        "type": "question" if question else "statement",
    }
    content = _Content(subj_det, subj_adj, verb, obj_det, obj_adj, obj, _PHRASES.index(phrase))
    return factors if _render(factors, content) == normalised else None


def write_corpus(path: str | Path, n: int, seed: int = 0, label: str | None = None, fmt: str = "lines") -> Path:
    """Write ``generate(n, seed)`` to ``path`` (parents created) and return the path.

    ``fmt="lines"``: one sentence per line; if ``label`` names a factor, a tab-separated table with a
    header row ``text<TAB><label>`` instead (load it with ``data.format=csv``, e.g. as a ``.tsv`` file).
    ``fmt="jsonl"``: one object per line with ``text`` and every factor (``label`` is ignored). Other formats, or a ``label`` that is not a factor, raise ``ValueError``.
    """
    if fmt not in ("lines", "jsonl"):
        raise ValueError(f"unknown corpus format {fmt!r}; expected 'lines' or 'jsonl'")
    if fmt == "lines" and label is not None and label not in FACTORS:
        raise ValueError(f"label must be one of {list(FACTORS)}, got {label!r}")
    sentences = generate(n, seed)
    if fmt == "jsonl":
        lines = [json.dumps({"text": s.text, **s.factors}) for s in sentences]
    elif label is not None:
        lines = [f"text\t{label}"] + [f"{s.text}\t{s.factors[label]}" for s in sentences]
    else:
        lines = [s.text for s in sentences]
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return out
