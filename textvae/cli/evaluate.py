"""``textvae evaluate``, ``score`` and ``impute``: the numbers of a trained model on a corpus or a sentence.

Thin wrappers: the work is in :mod:`textvae.evaluation`. Results go to stdout (a table, or JSON with
``--json``); progress, ETA and what happened to the input rows go to stderr.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from textvae.cli.common import (
    add_data_args,
    add_decoding_args,
    add_model_args,
    decoding_from_args,
    emit,
    load_data,
    load_model,
    nonnegative_int,
    positive_int,
    require_text,
    with_bans,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="NLL, perplexity, KL, mutual information, active units, BLEU and diversity on a corpus",
        description="Likelihood figures of a model on a corpus (importance-weighted NLL, perplexity, "
        "negative ELBO, KL, mutual information, active units; nats per sentence), reconstruction BLEU and "
        "the diversity of prior samples. Decoding flags apply to the prior samples; reconstructions are greedy.",
    )
    add_model_args(p, precision="float32")  # reported likelihoods: float32 unless asked
    add_data_args(p)
    p.add_argument(
        "--iw-samples", type=nonnegative_int, default=500, metavar="K", help="K for the IW bound (default 500; 0: ELBO)"
    )
    p.add_argument(
        "--chunk-size", type=positive_int, default=256, metavar="N", help="(sentence, sample) pairs per decoder call"
    )
    p.add_argument(
        "--bleu-sentences",
        type=nonnegative_int,
        default=None,
        metavar="N",
        help="sentences reconstructed (default all; 0 skips)",
    )
    p.add_argument(
        "--samples",
        type=nonnegative_int,
        default=100,
        metavar="N",
        help="prior samples for distinct-n/self-BLEU (0 skips)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    add_decoding_args(p)
    p.set_defaults(func=run_evaluate)

    s = sub.add_parser(
        "score",
        help="per-sentence NLL, sorted: the least likely (anomalous) sentences first",
        description="Score every sentence by its NLL (importance-weighted bound, or negative ELBO), per "
        "sentence and per token, and list them sorted, least likely first.",
    )
    add_model_args(s, precision="float32")
    add_data_args(s, "sentences to score")
    s.add_argument(
        "--iw-samples", type=positive_int, default=100, metavar="K", help="samples per sentence (default 100)"
    )
    s.add_argument("--bound", choices=["iw", "elbo"], default="iw", help="IW bound (default) or negative ELBO")
    s.add_argument("--sort", choices=["per-token", "nll", "row"], default="per-token", help="sort key")
    s.add_argument("--ascending", action="store_true", help="most likely first instead")
    s.add_argument("--top", type=positive_int, default=None, metavar="N", help="print only the first N")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    s.set_defaults(func=run_score)

    i = sub.add_parser(
        "impute",
        help='fill the blanks in "a sentence with ___ missing"',
        description="Fill each ___ with one word (token), using the posterior of the rest of the sentence; "
        "all other text is kept as written.",
    )
    add_model_args(i)
    i.add_argument("sentences", nargs="+", metavar="SENTENCE", help="text with one or more ___ blanks")
    i.add_argument("--rounds", type=positive_int, default=5, metavar="R", help="encode/fill rounds at most (default 5)")
    i.add_argument(
        "--candidates", type=positive_int, default=50, metavar="C", help="tokens rescored per blank (default 50)"
    )
    i.add_argument("--label", default=None, help="label of a conditional model")
    i.set_defaults(func=run_impute)


def _fmt(v: Any, digits: int = 2) -> str:
    if v is None:
        return "-"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def run_evaluate(args: argparse.Namespace) -> int:
    from textvae.evaluation.likelihood import evaluate_corpus
    from textvae.evaluation.scoring import prior_diversity, reconstruction_bleu

    decoding = decoding_from_args(args)
    model = load_model(args)
    decoding = with_bans(decoding, args, model)
    data = load_data(args, model)
    is_lm = not model.has_latent
    report = evaluate_corpus(
        model,
        data.token_ids,
        iw_samples=args.iw_samples,
        batch_size=args.batch_size,
        chunk_size=args.chunk_size,
        seed=args.seed,
        progress=not args.no_progress,
        labels=data.label_ids,
    )
    report.update(model="lm" if is_lm else "vae", latent_size=0 if is_lm else model.config.latent_size)
    report.update(rec_bleu=None, bleu_sentences=0, distinct_1=None, distinct_2=None, self_bleu=None, num_samples=0)
    n_bleu = len(data.token_ids) if args.bleu_sentences is None else min(args.bleu_sentences, len(data.token_ids))
    if not is_lm and n_bleu > 0:
        _note(args, f"decoding {n_bleu} reconstructions (greedy, posterior means)")
        labels = None if data.label_ids is None else data.label_ids[:n_bleu]
        rec = reconstruction_bleu(
            model,
            data.token_ids[:n_bleu],
            labels,
            max_length=args.max_length,
            batch_size=args.batch_size,
        )
        report.update(rec_bleu=rec["rec_bleu"], bleu_sentences=n_bleu)
    if args.samples >= 2:
        _note(args, f"decoding {args.samples} prior samples ({decoding.strategy})")
        div = prior_diversity(model, args.samples, decoding, seed=args.seed, label_ids=data.label_ids)
        report.update({k: div[k] for k in ("distinct_1", "distinct_2", "self_bleu", "num_samples")})
    report["data"] = data.stats
    if args.json:
        emit([report], True, str)
        return 0
    k = report["iw_samples"]
    nll_name = "NLL (exact)" if is_lm else (f"NLL (IW bound, K={k})" if k else "NLL (not computed: K=0)")
    rows = [
        ("negative ELBO", report["neg_elbo"], "nats/sentence"),
        ("  reconstruction", report["rec"], "nats/sentence"),
        ("  KL", report["kl"], "nats/sentence"),
        (nll_name, report["nll_iw"], "nats/sentence"),
        ("perplexity", report["ppl"], "from the NLL" if report["nll_iw"] is not None else "from the -ELBO"),
        ("perplexity (-ELBO bound)", report["ppl_elbo"], ""),
        ("bits per word", report["bits_per_word"], "log2 perplexity: per target token, end token included"),
        ("rate (KL)", report["rate_bits"], "bits/sentence"),
        ("distortion (reconstruction)", report["distortion_bits"], "bits/sentence"),
        ("mutual information I(x;z)", report["mi"], "nats"),
        ("active units", f"{report['au']} / {report['latent_size']}", "Cov_x E[z|x] > 0.01"),
        ("sentences / tokens", f"{report['num_sentences']} / {report['num_tokens']}", "end tokens counted"),
        ("reconstruction BLEU", report["rec_bleu"], f"greedy, {report['bleu_sentences']} sentences"),
        ("distinct-1 / distinct-2", _pair(report["distinct_1"], report["distinct_2"]), "prior samples"),
        ("self-BLEU", report["self_bleu"], f"{report['num_samples']} prior samples; lower = more diverse"),
        ("time", report["seconds"], "seconds (likelihood part)"),
    ]
    width = max(len(r[0]) for r in rows)
    for name, value, note in rows:
        print(f"{name:<{width}}  {_fmt(value):>12}  {note}".rstrip())
    return 0


def _pair(a: float | None, b: float | None) -> str | None:
    return None if a is None or b is None else f"{a:.3f} / {b:.3f}"


def _note(args: argparse.Namespace, text: str) -> None:
    if not args.no_progress:
        print(text, file=sys.stderr, flush=True)


def run_score(args: argparse.Namespace) -> int:
    from textvae.evaluation.scoring import rank_sentences, sentence_scores

    model = load_model(args)
    data = load_data(args, model)
    nll = sentence_scores(
        model,
        data.token_ids,
        data.label_ids,
        iw_samples=args.iw_samples,
        bound=args.bound,
        batch_size=args.batch_size,
        seed=args.seed,
        progress=not args.no_progress,
    )
    ranked = rank_sentences(data, nll, by=args.sort.replace("-", "_"), descending=not args.ascending)
    if args.top is not None:
        ranked = ranked[: args.top]
    if not args.json:
        print(f"{'rank':>5} {'row':>6} {'nll':>9} {'per tok':>8}  text")
    emit(
        ranked,
        args.json,
        lambda r: f"{r['rank']:>5} {r['row']:>6} {r['nll']:>9.2f} {r['nll_per_token']:>8.3f}  {r['text']}",
    )
    return 0


def run_impute(args: argparse.Namespace) -> int:
    from textvae.errors import TextVAEError
    from textvae.inference.imputation import BLANK, impute

    for s in args.sentences:  # check every input before the (slow) model load
        if not BLANK.search(require_text(s)):
            raise TextVAEError(f"{s!r} has no blank; mark each missing word with ___ (three underscores)")
    model = load_model(args)

    def records():
        for s in args.sentences:
            r = impute(model, s, rounds=args.rounds, candidates=args.candidates, label=args.label)
            yield {
                "input": s,
                "text": r.text,
                "fills": r.fills,
                "nll": r.nll,
                "rounds": r.rounds,
                "converged": r.converged,
            }

    emit(records(), args.json, lambda r: r["text"])
    return 0
