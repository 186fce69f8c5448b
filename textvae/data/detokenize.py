"""Readable text from a word-tokenized model's output: "a man is in a blue shirt ." -> "A man is in a blue shirt."

Word vocabularies decode to tokens joined by spaces (the form of PTB, Multi30k and the embedded corpus).
NLTK's Treebank detokenizer reattaches punctuation, clitics and brackets (it needs no data download), and
a lowercased text gets its first letter and the pronoun "i" capitalised. Text that already has capitals
is left as it is: its casing came from the corpus. Special tokens such as ``<unk>`` are kept untouched.

Metrics never see this form: BLEU and exact-match reconstruction compare the raw tokens.
"""

from __future__ import annotations

import functools
import re

_PRONOUN_I = re.compile(r"(?<![\w<'])i(?=$|[\s'.,!?;:])")


@functools.lru_cache(maxsize=1)
def _detokenizer():
    from nltk.tokenize.treebank import TreebankWordDetokenizer

    return TreebankWordDetokenizer()


def recase(text: str) -> str:
    """Capitalise the first letter and a standalone "i" of an all-lowercase ``text``; other text unchanged.
    A sentence that starts with a special token (``<unk> said ...``) keeps its first word as it is."""
    if any(c.isupper() for c in text):
        return text
    text = _PRONOUN_I.sub("I", text)
    for k, c in enumerate(text):  # the first letter, after opening quotes or brackets
        if c.isalpha():
            return text[:k] + c.upper() + text[k + 1 :]
        if c.isdigit() or c == "<":
            break
    return text


def detokenize(text: str) -> str:
    """Space-separated word tokens -> readable text (Treebank detokenization, then :func:`recase`)."""
    words = text.split()
    if not words:
        return ""
    return recase(_detokenizer().detokenize(words))
