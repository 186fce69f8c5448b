"""Sentence-level evaluation: reading a corpus to evaluate, per-sentence NLL (anomaly ranking), text figures
(reconstruction BLEU, diversity of prior samples) and imputation of missing words.

Units are nats. A sentence of ``n`` tokens has ``n + 1`` target tokens (the end token counts), as in
:mod:`textvae.evaluation.likelihood`, so per-token figures are comparable with its perplexity.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from textvae.data.batching import collate
from textvae.data.corpus import preprocess, read_texts
from textvae.data.dataset import encode_texts
from textvae.data.text import normalize_text
from textvae.data.tokenizer import TextTokenizer
from textvae.errors import DataError, TextVAEError
from textvae.evaluation.likelihood import (
    ProgressCallback,
    _eval_mode,
    _importance_terms,
    encoder_tokenizer_of,
    eval_batches,
    exact_nll,
    iw_nll,
)
from textvae.evaluation.text_metrics import corpus_bleu, distinct_n, self_bleu
from textvae.model.decoding import DecodingConfig
from textvae.model.objective import gaussian_kl

#: A blank to impute: three or more underscores.
BLANK = re.compile(r"_{3,}")
_NO_LIMIT = 1 << 30  # "no length filter": a max_length no sentence reaches


# -- reading a corpus to evaluate -------------------------------------------------------------------------
@dataclass
class EvalData:
    """A cleaned, tokenized corpus to evaluate, in file order.

    ``rows`` are 1-based row numbers in the source (lines of a text file, data rows of a table), so a
    score can be traced back to its line. ``labels`` maps each requested label column to one string per
    sentence; ``label_ids`` are the conditioning label ids of a conditional model (else None).
    ``encoder_ids`` are the same sentences in the encoder's own tokenizer when the model has one
    (``data.encoder_tokenizer``), else None: pass them on as ``encoder_ids=`` to the functions here.
    """

    texts: list[str]
    token_ids: list[list[int]]
    rows: list[int]
    labels: dict[str, list[str]] = field(default_factory=dict)
    label_ids: list[int] | None = None
    stats: dict[str, int] = field(default_factory=dict)
    encoder_ids: list[list[int]] | None = None

    def describe(self) -> str:
        """One line saying how many rows were read, kept, dropped and truncated, and why."""
        s = self.stats
        parts = [f"read {s['read']} rows, evaluating {len(self.texts)}"]
        for key, what in (
            ("blank", "blank"),
            ("dropped_short", "shorter than data.min_length"),
            ("dropped_long", "longer than data.max_length"),
            ("unknown_label", "with a label unseen in training"),
            ("beyond_max", "beyond --max-sentences"),
        ):
            if s.get(key):
                parts.append(f"{s[key]} {what} dropped")
        if s.get("truncated"):
            parts.append(f"{s['truncated']} cut to data.max_length words")
        if s.get("token_truncated"):
            parts.append(f"{s['token_truncated']} cut to {s['max_tokens']} tokens (data.max_tokens)")
        if s.get("encoder_token_truncated"):
            parts.append(f"{s['encoder_token_truncated']} cut to {s['max_tokens']} encoder tokens (data.max_tokens)")
        return "; ".join(parts)


def load_eval_data(
    model: Any,
    source: str,
    *,
    label_columns: Sequence[str] = (),
    length_filter: bool = False,
    max_sentences: int | None = None,
    key: str = "the data path",
    flags: dict[str, str] | None = None,
    text_column: str | None = None,
) -> EvalData:
    """Read ``source`` and clean it exactly as the model's training data was (strip, lowercase, word
    tokenizer from ``model.data_config``), then tokenize with the model's tokenizer - and, when the encoder
    has a tokenizer of its own, with that one too (``encoder_ids``), both capped at ``data.max_tokens``.

    Unlike training, nothing is deduplicated, and by default no sentence is dropped for its length (a test
    set is evaluated whole, as the literature does); ``length_filter=True`` applies the training
    ``min_length``/``max_length`` policy. Every drop is counted in ``stats`` (see :meth:`EvalData.describe`).
    A conditional model's conditioning column (its ``data.label_column``) is always read; sentences whose
    label it never saw are dropped. Raises :class:`DataError` when nothing is left.
    """
    if model.tokenizer is None:
        raise TextVAEError("this model has no tokenizer; load it with TextVAE.from_pretrained")
    cfg = dataclasses.replace(model.data_config, train=source, valid=None, format="auto", dedup=False)
    if text_column:  # another column name than in training (``key``/``flags`` name the caller's settings)
        cfg = dataclasses.replace(cfg, text_column=text_column)
    if not length_filter:
        cfg = dataclasses.replace(cfg, min_length=1, max_length=_NO_LIMIT, length_policy="drop")
    cond = model.data_config.label_column if model.config.conditional else None
    columns = list(dict.fromkeys([*label_columns, *([cond] if cond else [])]))

    def read(column: str | None):
        raw = read_texts(source, dataclasses.replace(cfg, label_column=column), key, flags)
        # Row numbers ride along through the cleaning (preprocess keeps extra columns), to report them.
        raw = raw.add_column("_row", list(range(1, len(raw) + 1)))
        return preprocess(raw, cfg)

    ds, stats = read(columns[0] if columns else None)
    table = ds[:]
    texts, rows = list(table["text"]), list(table["_row"])
    labels = {columns[0]: [str(x) for x in table["label"]]} if columns else {}
    for col in columns[1:]:  # read_texts selects one label column at a time; the cleaning is the same
        labels[col] = [str(x) for x in read(col)[0][:]["label"]]
    stats = {k: stats[k] for k in ("read", "blank", "dropped_short", "dropped_long", "truncated")}

    label_ids = None
    if cond:
        index = {name: i for i, name in enumerate(model.label_names)}
        keep = [i for i, y in enumerate(labels[cond]) if y in index]
        stats["unknown_label"] = len(texts) - len(keep)
        texts, rows = [texts[i] for i in keep], [rows[i] for i in keep]
        labels = {c: [v[i] for i in keep] for c, v in labels.items()}
        label_ids = [index[y] for y in labels[cond]]
    if max_sentences is not None and len(texts) > max_sentences:
        stats["beyond_max"] = len(texts) - max_sentences
        texts, rows = texts[:max_sentences], rows[:max_sentences]
        labels = {c: v[:max_sentences] for c, v in labels.items()}
        label_ids = None if label_ids is None else label_ids[:max_sentences]
    if not texts:
        raise DataError(f"{source} has no sentence to evaluate ({stats['read']} rows read, {stats['blank']} blank)")
    limit = cfg.max_tokens

    def capped(tokenizer: TextTokenizer) -> tuple[list[list[int]], int]:  # (ids capped at limit, how many were cut)
        # One token over the cap tells which sentences the cap cuts, so the cut is reported, not silent.
        ids = encode_texts(tokenizer, texts, limit + 1)
        return [x[:limit] for x in ids], sum(len(x) > limit for x in ids)

    ids, stats["token_truncated"] = capped(model.tokenizer)
    stats["max_tokens"] = limit
    enc_ids = None
    enc = encoder_tokenizer_of(model)
    if enc is not None:  # a pretrained encoder must read ids of its own vocabulary, as in training
        enc_ids, stats["encoder_token_truncated"] = capped(enc)
    return EvalData(texts, ids, rows, labels, label_ids, stats, enc_ids)


@torch.no_grad()
def posterior_params(
    model: Any,
    token_ids: Sequence[Sequence[int]],
    labels: Sequence[int] | None = None,
    batch_size: int = 64,
    *,
    encoder_ids: Sequence[Sequence[int]] | None = None,
) -> tuple[Tensor, Tensor]:
    """``(mu [N, Z], logvar [N, Z])`` of every sentence, in input order (float32, on the model's device).
    ``labels`` are needed by a conditional model; ``encoder_ids`` (``EvalData.encoder_ids``) by a model whose
    encoder has its own tokenizer. Raises :class:`TextVAEError` for a language model."""
    if getattr(model, "encoder", None) is None:
        raise TextVAEError("this model has no latent (model.use_latent=false): it is a language model")
    n, z = len(token_ids), model.config.latent_size
    mu = torch.empty(n, z, device=model.device)
    logvar = torch.empty(n, z, device=model.device)
    with _eval_mode(model):
        for idx, b in eval_batches(model, token_ids, labels, batch_size, encoder_ids=encoder_ids):
            m, lv = model.encode_batch(b)  # reads the encoder's own ids when the batch has them
            mu[idx], logvar[idx] = m, lv
    return mu, logvar


# -- per-sentence NLL -----------------------------------------------------------------------------------
@torch.no_grad()
def sentence_scores(
    model: Any,
    token_ids: Sequence[Sequence[int]],
    labels: Sequence[int] | None = None,
    *,
    iw_samples: int = 100,
    bound: str = "iw",
    batch_size: int = 32,
    chunk_size: int | None = 256,
    seed: int = 0,
    progress: bool | ProgressCallback = True,
    encoder_ids: Sequence[Sequence[int]] | None = None,
) -> Tensor:
    """``-log p(x)`` estimate of each sentence, in input order: ``[N]`` nats.

    ``bound="iw"``: the importance-weighted bound with ``iw_samples`` samples (``iw_samples=1`` is the
    single-sample negative ELBO); ``bound="elbo"``: the negative ELBO with the reconstruction term averaged
    over ``iw_samples`` samples and the KL in closed form (lower variance than one sample, looser than IW).
    A language model gets its exact NLL whatever the bound. Seeded by ``seed``. ``encoder_ids``
    (``EvalData.encoder_ids``) are required by a model whose encoder has its own tokenizer.
    """
    if bound not in ("iw", "elbo"):
        raise ValueError(f"bound must be 'iw' or 'elbo', got {bound!r}")
    if iw_samples < 1:
        raise ValueError("iw_samples must be >= 1")
    is_lm = getattr(model, "encoder", None) is None
    # Built (and its arguments checked) before the progress bar opens, so a bad call leaves no bar behind.
    batches = eval_batches(model, token_ids, labels, batch_size, encoder_ids=encoder_ids)
    gen = torch.Generator(device=model.device).manual_seed(seed)
    out = torch.empty(len(token_ids))
    bar = None
    if progress is True:
        desc = "exact NLL" if is_lm else f"{bound.upper()} NLL (K={iw_samples})"
        bar = tqdm(total=len(token_ids), unit="sent", desc=desc, file=sys.stderr, dynamic_ncols=True)
    done = 0
    try:
        with _eval_mode(model):
            for idx, b in batches:
                if is_lm:
                    nll = exact_nll(model, b)
                elif bound == "iw":
                    nll = iw_nll(model, b, iw_samples, chunk_size=chunk_size, generator=gen)
                else:
                    mu, logvar = model.encode_batch(b)
                    _, log_px = _importance_terms(model, b, mu, logvar, iw_samples, chunk_size, gen)
                    nll = -log_px.mean(dim=1) + gaussian_kl(mu, logvar).sum(dim=-1)
                out[idx] = nll.float().cpu()
                done += len(idx)
                if bar is not None:
                    bar.update(len(idx))
                elif callable(progress):
                    progress(done, len(token_ids))
    finally:
        if bar is not None:
            bar.close()
    return out


def rank_sentences(data: EvalData, nll: Tensor, *, by: str = "per_token", descending: bool = True) -> list[dict]:
    """Records ``{rank, row, text, nll, tokens, nll_per_token}`` sorted by ``by`` (``per_token``: NLL per
    target token, which does not favour long sentences; ``nll``: per sentence; ``row``: file order).
    Descending puts the least likely (most anomalous) sentences first."""
    if by not in ("per_token", "nll", "row"):
        raise ValueError(f"by must be per_token, nll or row; got {by!r}")
    recs = []
    for i, (text, row) in enumerate(zip(data.texts, data.rows)):
        tokens = len(data.token_ids[i]) + 1  # the end token counts, as for perplexity
        v = float(nll[i])
        recs.append({"row": row, "text": text, "nll": v, "tokens": tokens, "nll_per_token": v / tokens})
    key = "nll_per_token" if by == "per_token" else by
    recs.sort(key=lambda r: r[key], reverse=descending and by != "row")
    return [{"rank": k + 1, **r} for k, r in enumerate(recs)]


# -- text figures ---------------------------------------------------------------------------------------
@torch.no_grad()
def reconstruction_bleu(
    model: Any,
    token_ids: Sequence[Sequence[int]],
    labels: Sequence[int] | None = None,
    *,
    max_length: int = 50,
    batch_size: int = 64,
    encoder_ids: Sequence[Sequence[int]] | None = None,
) -> dict[str, Any]:
    """Corpus BLEU (0-100) of greedy decodes of the posterior means against the inputs.

    References are the inputs as the tokenizer sees them (``decode(encode(x))``: out-of-vocabulary words
    are ``<unk>`` on both sides), so a perfect autoencoder scores 100. Returns ``rec_bleu`` and
    ``reconstructions`` (input order). ``encoder_ids``: as for :func:`posterior_params`."""
    mu, _ = posterior_params(model, token_ids, labels, batch_size, encoder_ids=encoder_ids)
    greedy = DecodingConfig(strategy="greedy", max_length=max_length)
    lab = None if labels is None or not model.config.conditional else torch.tensor(labels, device=model.device)
    hyps: list[str] = []
    for s in range(0, len(token_ids), batch_size):
        sub = None if lab is None else lab[s : s + batch_size]
        hyps += model.decode_ids(model.generate(mu[s : s + batch_size], decoding=greedy, labels=sub))
    refs = model.decode_ids(token_ids)
    return {"rec_bleu": corpus_bleu(refs, hyps), "reconstructions": hyps}


@torch.no_grad()
def prior_diversity(
    model: Any,
    num_samples: int,
    decoding: DecodingConfig | None = None,
    *,
    seed: int = 0,
    label_ids: Sequence[int] | None = None,
    self_bleu_sample: int | None = 500,
) -> dict[str, Any]:
    """Diversity of ``num_samples`` sentences decoded from prior draws z ~ N(0, I) (from the LM itself when
    there is no latent): ``distinct_1``, ``distinct_2`` (unique / total n-grams, 0-1) and ``self_bleu``
    (0-100, lower is more diverse; on a random ``self_bleu_sample`` of them, as its cost is quadratic).
    A conditional model draws each sample's label uniformly from ``label_ids``. Returns also ``samples``."""
    if num_samples < 2:
        raise ValueError("need at least 2 samples to measure diversity")
    g = torch.Generator(device=model.device).manual_seed(seed)
    lab = None
    if model.config.conditional:
        pool = torch.tensor(sorted(set(label_ids or range(model.config.num_labels))), device=model.device)
        lab = pool[torch.randint(len(pool), (num_samples,), generator=g, device=model.device)]
    z = model.sample_prior(num_samples, g) if getattr(model, "encoder", None) is not None else None
    samples = model.decode_ids(model.generate(z, num=num_samples, decoding=decoding, generator=g, labels=lab))
    return {
        "distinct_1": distinct_n(samples, 1),
        "distinct_2": distinct_n(samples, 2),
        "self_bleu": self_bleu(samples, sample=self_bleu_sample, seed=seed),
        "num_samples": num_samples,
        "samples": samples,
    }


# -- imputation -----------------------------------------------------------------------------------------
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
def impute(model: Any, sentence: str, *, rounds: int = 5, candidates: int = 50, label: str | None = None) -> Imputation:
    """Fill each ``___`` (one token each: one word with a word tokenizer) in ``sentence``.

    Hard EM / iterated conditional modes on ``log p(x_obs, x_miss | z)``: blanks start as ``<unk>`` (what
    the model sees for an unknown word, so the first code is the posterior of the rest of the sentence);
    then each round (1) sets z to the posterior mean of q(z | current sentence) and (2) visits the blanks
    left to right, takes the ``candidates`` likeliest tokens at that position given the left context and z,
    and keeps the one whose whole completed sentence has the highest ``log p(x | z)`` - so the words to the
    right of a blank count too. For fixed z a step never lowers ``log p(x | z)``; rounds stop when nothing
    changes. Special tokens (``<unk>`` included) are never chosen, so every blank gets a real token.
    An encoder with its own tokenizer reads the sentence in that tokenizer, encoded piece by piece as the
    decoder's ids are: an unfilled blank is its unknown token, a filled one the encoding of the chosen word.
    """
    if rounds < 1 or candidates < 1:
        raise ValueError("rounds and candidates must be >= 1")
    pieces = BLANK.split(sentence)
    if len(pieces) < 2:
        raise TextVAEError("the sentence has no blank; mark each missing word with ___ (three underscores)")
    tok, c, dev = model.tokenizer, model.config, model.device
    if tok is None:
        raise TextVAEError("this model has no tokenizer; load it with TextVAE.from_pretrained")
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

    enc = encoder_tokenizer_of(model)
    enc_pieces = None if enc is None else [enc.encode(text) if text else [] for text in texts]

    def encoder_ids_of(seq: Tensor) -> list[list[int]] | None:  # decoder ids [T] -> [the encoder's ids]
        if enc is None or enc_pieces is None:  # the encoder reads the decoder's ids
            return None
        out: list[int] = []
        for piece, p in itertools.zip_longest(enc_pieces, blanks):
            out += piece
            if p is not None:
                t = int(seq[p])
                fill = [enc.unk_id] if t == c.unk_id else enc.encode(normalize_text(tok.decode([t]), model.data_config))
                out += fill
        return [out]

    def code_of(seq: Tensor) -> Tensor | None:  # [1, Z (+ L)]: posterior mean of q(z | seq), or no latent
        if model.encoder is None:
            return model.decoder_code(None, lab)
        _, b = next(eval_batches(model, [seq.tolist()], None, 1, encoder_ids=encoder_ids_of(seq)))
        b.labels = lab  # already a [1] tensor (or None): set after batching, which takes label ids
        return model.decoder_code(model.encode_batch(b).mu, lab)

    def nll_of(seqs: Tensor, code: Tensor | None) -> Tensor:  # [n, T] same-length sentences -> [n] nats
        b = collate(seqs.tolist(), c.pad_id, c.bos_id, c.eos_id).to(dev)
        codes = None if code is None else code.expand(len(seqs), -1)
        return model.sentence_nll(b.input_ids, b.lengths, codes)[0]

    done = 0
    converged = False
    with _eval_mode(model):
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
