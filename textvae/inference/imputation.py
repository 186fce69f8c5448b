"""Filling in missing words: each ``___`` in a sentence gets the token that makes the whole completed
sentence likeliest under the model (hard EM over the latent code and the blanks)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from textvae.data.batching import collate
from textvae.data.text import normalize_text
from textvae.errors import ParameterError, TextVAEError
from textvae.model.modes import eval_mode

if TYPE_CHECKING:
    from textvae.model.vae import TextVAE

#: A blank to impute: three or more underscores.
BLANK = re.compile(r"_{3,}")


@dataclass
class Imputation:
    """A completed sentence: ``text`` is the input with each blank replaced by ``fills[i]`` (all other
    characters kept verbatim); ``nll`` is ``-log p(x | z)`` of the completion (nats; z = posterior mean of
    the completion, none for a language model); ``rounds`` were run; ``converged`` if the last changed nothing."""

    text: str
    fills: list[str]
    nll: float
    rounds: int
    converged: bool


@torch.no_grad()
def impute(
    model: TextVAE, sentence: str, *, rounds: int = 5, candidates: int = 50, label: str | None = None
) -> Imputation:
    """Fill each ``___`` (one token each: one word with a word tokenizer) in ``sentence``.

    Hard EM / iterated conditional modes on ``log p(x_obs, x_miss | z)``: blanks start as ``<unk>`` (what
    the model sees for an unknown word, so the first code is the posterior of the rest of the sentence);
    then each round (1) sets z to the posterior mean of q(z | current sentence) and (2) visits the blanks
    left to right, takes the ``candidates`` likeliest tokens at that position given the left context and z,
    and keeps the one whose whole completed sentence has the highest ``log p(x | z)`` - so the words to the
    right of a blank count too. For fixed z a step never lowers ``log p(x | z)``; rounds stop when nothing
    changes. Special tokens (``<unk>`` included) are never chosen, so every blank gets a real token.
    An encoder with its own tokenizer reads the sentence in that tokenizer (:meth:`TextVAE.batch_from_ids`):
    an unfilled blank is its unknown token, a filled one the encoding of the chosen word.
    """
    if rounds < 1 or candidates < 1:
        raise ParameterError("{rounds} and {candidates} must be >= 1")
    pieces = BLANK.split(sentence)
    if len(pieces) < 2:
        raise TextVAEError("the sentence has no blank; mark each missing word with ___ (three underscores)")
    tok, c, dev = model.require_tokenizer(), model.config, model.device
    texts = [normalize_text(piece, model.data_config) for piece in pieces]
    ids: list[int] = []
    blanks: list[int] = []
    for k, text in enumerate(texts):
        ids += tok.encode(text) if text else []
        if k < len(texts) - 1:
            blanks.append(len(ids))
            ids.append(c.unk_id)
    x = torch.tensor(ids, dtype=torch.long, device=dev)
    lab = model.label_ids([label] if label is not None else None, 1)
    banned = torch.tensor(sorted({c.pad_id, c.bos_id, c.eos_id, c.unk_id}), device=dev)
    k = min(candidates, c.vocab_size - len(banned))

    def code_of(seq: Tensor) -> Tensor | None:  # [1, Z (+ L)]: posterior mean of q(z | seq), or no latent
        if not model.has_latent:
            return model.decoder_code(None, lab)
        b = model.batch_from_ids([seq.tolist()])
        b.labels = lab  # already a [1] tensor (or None)
        return model.decoder_code(model.encode_batch(b).mu, lab)

    def nll_of(seqs: Tensor, code: Tensor | None) -> Tensor:  # [n, T] same-length sentences -> [n] nats
        b = collate(seqs.tolist(), c.pad_id, c.bos_id, c.eos_id).to(dev)
        codes = None if code is None else code.expand(len(seqs), -1)
        return model.sentence_nll(b.input_ids, b.lengths, codes)[0]

    done = 0
    converged = False
    with eval_mode(model):
        while done < rounds and not converged:
            done += 1
            before = x.clone()
            code = code_of(x)
            for p in blanks:
                prefix = torch.cat([x.new_tensor([c.bos_id]), x[:p]]).unsqueeze(0)
                hidden, _ = model.decoder(prefix, code)
                logits = model.decoder.project(hidden[0, -1]).float()
                logits[banned] = float("-inf")
                cand = logits.topk(k).indices  # proposals from the left context; rescored on the whole sentence
                seqs = x.unsqueeze(0).repeat(k, 1)
                seqs[:, p] = cand
                x = seqs[int(nll_of(seqs, code).argmin())]
            # A round that changes nothing would repeat itself (the code depends only on x): a fixed point.
            converged = done > 1 and torch.equal(x, before)
        nll = float(nll_of(x.unsqueeze(0), code_of(x))[0])
    fills = [tok.decode([int(x[p])]).strip() for p in blanks]
    text = "".join(piece + (fills[i] if i < len(fills) else "") for i, piece in enumerate(pieces))
    return Imputation(text=text, fills=fills, nll=nll, rounds=done, converged=converged)
