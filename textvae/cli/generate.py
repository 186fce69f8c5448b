"""Generation commands: ``sample``, ``interpolate``, ``mix``, ``reconstruct``, ``encode``, ``analogy`` and
``traverse``. Each parses its arguments, calls :mod:`textvae.inference` and prints one line per result
(one JSON object per line with ``--json``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from textvae.cli.common import (
    add_decoding_args,
    add_model_args,
    decoding_from_args,
    emit,
    load_model,
    number_or_auto,
    require_text,
    with_bans,
)
from textvae.errors import DataError, TextVAEError

_LABEL_HELP = "label for a conditional model (model.conditional=true): encode and decode with it"


def register(sub: argparse._SubParsersAction) -> None:
    p = _command(sub, "sample", "sentences from the prior, or near a given sentence", 'JSON: {"text": ...}')
    p.add_argument("-n", "--num", type=int, default=10, help="how many sentences (default 10)")
    p.add_argument("--near", metavar="TEXT", help="sample around this sentence instead of from the prior")
    p.add_argument(
        "--radius",
        type=float,
        default=None,
        help="with --near: uniform in the ball of this radius around its posterior mean "
        "(default: from its posterior q(z|x))",
    )
    p.add_argument("--label", help="class to generate, for a conditional model")
    p.set_defaults(func=run_sample)

    p = _command(
        sub,
        "interpolate",
        "decode a path between sentences' posterior means (or random prior points)",
        'JSON per step: {"step": i, "alpha": a, "text": ...}; alpha k.0 is the k-th input',
    )
    p.add_argument("sentences", nargs="*", help="two or more sentences, visited in order")
    p.add_argument(
        "--random",
        type=int,
        nargs="?",
        const=2,
        metavar="K",
        help="walk between K random prior points (default 2) instead of sentences",
    )
    p.add_argument("--steps", type=int, default=8, help="points per segment, both ends included (default 8)")
    p.add_argument("--method", choices=["linear", "slerp"], default="linear", help="path shape (default linear)")
    p.add_argument("--label", help=_LABEL_HELP)
    p.set_defaults(func=run_interpolate)

    p = _command(
        sub,
        "mix",
        "move sentences to another style (attribute vector, dimension mixing or conditional decoding)",
        'JSON: {"source": ..., "target_style": ..., "text": ...}',
    )
    p.add_argument("sentences", nargs="+", help="content sentences")
    p.add_argument(
        "--method",
        choices=["attribute", "dims", "conditional"],
        default=None,
        help="default: conditional for a conditional model, else attribute",
    )
    g = p.add_argument_group("labelled examples (attribute, dims)")
    g.add_argument("--data", metavar="FILE", help="CSV/TSV/JSONL file with a text and a label column")
    g.add_argument("--label-column", help="the label column of --data")
    g.add_argument(
        "--text-column", default=None, help="the text column of --data (default: the one the model was trained on)"
    )
    g.add_argument("--style-a", metavar="FILE", help="sentences of style 'a', one per line")
    g.add_argument("--style-b", metavar="FILE", help="sentences of style 'b', one per line")
    g.add_argument("--max-examples", type=int, default=2000, help="examples encoded per style (default 2000; 0: all)")
    g = p.add_argument_group("styles")
    g.add_argument("--target-style", help="style to move to (a label; default 'b' with --style-a/--style-b)")
    g.add_argument("--source-style", help="style to move from (default: every other style; for conditional: inferred)")
    g.add_argument(
        "--alpha",
        type=number_or_auto,
        default=None,
        help="attribute: how far to move along mean(target)-mean(source) (default 3 for --shift edit, else 1), "
        "or 'auto': the step whose style-moved share x BLEU to the source is best on a held-out part of the "
        "examples, judged by a classifier trained on the rest (printed)",
    )
    g.add_argument(
        "--shift",
        choices=["edit", "uniform", "calibrated", "search", "local"],  # style.SHIFT_MODES (imported lazily)
        default="edit",
        help="attribute: edit (default) keeps the sentence and changes a few words until the model reads it "
        "as the target style, alpha setting how hard the word choices lean; the others decode a moved code: "
        "every sentence moved alpha (uniform), by its own step that lands it where alpha lands the source "
        "mean on the styles' discriminant (calibrated), by the smallest step up to alpha whose output the "
        "model reads as the target style (search), or by alpha along the vector between its nearest 5%% of "
        "each style's examples (local)",
    )
    g.add_argument("--dims", type=int, default=None, metavar="K", help="dims: take the K most style-predictive dims")
    g.add_argument(
        "--dim-threshold", type=float, default=None, help="dims: take dims with |2AUC-1| >= this (default 0.5)"
    )
    g.add_argument("--style-sentence", metavar="TEXT", help="dims: copy the style dims from it (default: target mean)")
    p.set_defaults(func=run_mix)

    p = _command(
        sub,
        "reconstruct",
        "encode sentences to their posterior means and decode them",
        'JSON: {"source": ..., "text": ...}',
    )
    _add_inputs(p)
    p.add_argument("--label", help=_LABEL_HELP)
    p.set_defaults(func=run_reconstruct)

    p = _command(
        sub,
        "encode",
        "posterior means and log-variances of sentences",
        'JSON: {"text": ..., "mu": [...], "logvar": [...]}',
        decoding=False,
    )
    _add_inputs(p)
    p.add_argument(
        "--output",
        "--npy",
        metavar="FILE.npy",
        help="write an array [N, 2, Z] (means, log-variances) instead; an existing file is kept unless --force",
    )
    p.add_argument("--force", action="store_true", help="replace an existing --output file")
    p.add_argument("--label", help=_LABEL_HELP)
    p.set_defaults(func=run_encode)

    p = _command(
        sub, "analogy", "decode mu(a) - mu(b) + mu(c): a is to b as ? is to c", 'JSON: {"a", "b", "c", "text"}'
    )
    for name in ("a", "b", "c"):
        p.add_argument(name, help=f"sentence {name}")
    p.add_argument("--label", help=_LABEL_HELP)
    p.set_defaults(func=run_analogy)

    p = _command(
        sub,
        "traverse",
        "vary one latent dimension from -3 to +3 prior standard deviations and decode",
        'JSON per step: {"step", "dim", "offset", "value", "text"}',
    )
    p.add_argument("--dim", type=int, required=True, help="latent dimension (0-based)")
    p.add_argument("--sentence", metavar="TEXT", help="traverse around its posterior mean (default: the origin)")
    p.add_argument("--steps", type=int, default=7, help="points, both ends included (default 7)")
    p.add_argument("--span", type=float, default=3.0, help="largest offset in prior standard deviations (default 3)")
    p.add_argument("--label", help=_LABEL_HELP)
    p.set_defaults(func=run_traverse)


def _command(
    sub: argparse._SubParsersAction, name: str, summary: str, output: str, decoding: bool = True
) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=summary, description=f"{summary[0].upper()}{summary[1:]}. {output}.")
    add_model_args(p)
    if decoding:
        add_decoding_args(p)
    return p


def _add_inputs(p: argparse.ArgumentParser) -> None:
    p.add_argument("sentences", nargs="*", help="sentences (or --input)")
    p.add_argument("--input", metavar="FILE", help="read sentences from a file, one per line")


def _inputs(args: argparse.Namespace) -> list[str]:
    """Sentences from the command line and ``--input`` (blank lines of the file skipped)."""
    sentences = list(args.sentences)
    if args.input:
        path = Path(args.input)
        if not path.is_file():
            raise DataError(f"input file not found: {path}")
        try:
            sentences += [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        except UnicodeDecodeError:
            raise DataError(f"{path} is not UTF-8 text") from None
    if not sentences:
        raise TextVAEError("give sentences as arguments or with --input FILE")
    for s in sentences:
        require_text(s)
    return sentences


def _generator(model, args: argparse.Namespace):
    from textvae.inference.sampling import seeded

    return seeded(model, args.seed)


# -- commands --------------------------------------------------------------------------------------


def run_sample(args: argparse.Namespace) -> int:
    from textvae.inference.sampling import sample_near, sample_prior

    decoding = decoding_from_args(args)
    if args.radius is not None and args.near is None:
        raise TextVAEError("--radius needs --near TEXT")
    model = load_model(args)
    decoding = with_bans(decoding, args, model)
    if args.near is not None:
        texts = sample_near(model, require_text(args.near), args.num, args.radius, decoding, args.seed, args.label)
    else:
        texts = sample_prior(model, args.num, decoding, args.seed, args.label)
    emit(({"text": t} for t in texts), args.json, lambda r: r["text"])
    return 0


def run_interpolate(args: argparse.Namespace) -> int:
    from textvae.inference.interpolation import check_path, interpolate, interpolate_random

    decoding = decoding_from_args(args)
    check_path(args.steps, args.method)  # before loading the model
    if args.random is not None and args.sentences:
        raise TextVAEError("give sentences or --random, not both")
    if args.random is None and len(args.sentences) < 2:
        raise TextVAEError("give at least two sentences to interpolate between, or --random for prior points")
    for s in args.sentences:
        require_text(s)
    model = load_model(args)
    decoding = with_bans(decoding, args, model)
    g = _generator(model, args)
    if args.random is not None:
        records = interpolate_random(model, args.steps, args.method, decoding, args.label, g, args.random)
    else:
        records = interpolate(model, args.sentences, args.steps, args.method, decoding, args.label, g)
    emit(records, args.json, lambda r: f"{r['alpha']:6.3f}  {r['text']}")
    return 0


def run_mix(args: argparse.Namespace) -> int:
    from textvae.inference import style

    decoding = decoding_from_args(args)
    for s in args.sentences:
        require_text(s)
    if args.style_sentence is not None:
        require_text(args.style_sentence, "style sentence")
    if args.dims is not None and args.dim_threshold is not None:
        raise TextVAEError("give --dims or --dim-threshold, not both")
    model = load_model(args)
    decoding = with_bans(decoding, args, model)
    method = args.method or ("conditional" if model.config.conditional else "attribute")
    extra: dict = {}  # --method dims: the dimensions used, in every record
    g = _generator(model, args)
    if method == "conditional":
        if args.data or args.style_a or args.style_b:
            raise TextVAEError("--method conditional uses the model's own labels: drop --data/--style-a/--style-b")
        if not args.target_style:
            raise TextVAEError(f"give --target-style, one of {', '.join(model.label_names) or '(no labels)'}")
        target = args.target_style
        texts = style.transfer_conditional(
            model, args.sentences, target, [args.source_style] if args.source_style else None, decoding, g
        )
    else:
        style.check_unconditional(model)  # before reading the examples
        examples, target = _style_examples(model, args)
        codes = style.encode_examples(model, examples)
        if method == "attribute":
            alpha = style.default_alpha(args.shift) if args.alpha is None else args.alpha
            if alpha == "auto":
                alpha = _auto_alpha(model, examples, args)
                extra = {"alpha": alpha}
            shares = style.example_word_shares(model, examples) if args.shift == "edit" else None
            texts = style.transfer_attribute(
                model, args.sentences, codes, target, args.source_style, alpha, decoding, g, args.shift, shares
            )
        else:
            threshold = style.DIM_THRESHOLD if args.dim_threshold is None else args.dim_threshold
            dims, scores = style.style_dimensions(codes, target, args.source_style, args.dims, threshold)
            chosen = {int(d): round(float(scores[d]), 4) for d in dims.tolist()}
            if not args.json:
                listed = ", ".join(f"{d} ({v:.2f})" for d, v in chosen.items())
                print(f"style dimensions (|2AUC-1|): {listed}", file=sys.stderr)
            weak = [f"{d} ({v:.2f})" for d, v in chosen.items() if v < threshold]
            if weak:  # the top-k, or the best one when none passes: say that it carries little of the style
                print(
                    f"textvae mix: warning: dimension(s) {', '.join(weak)} score below --dim-threshold {threshold}; "
                    "they separate the styles weakly",
                    file=sys.stderr,
                )
            extra = {"dims": list(chosen), "dim_scores": list(chosen.values())}
            texts = style.transfer_dimensions(
                model, args.sentences, codes, target, dims, args.style_sentence, decoding, g
            )
    records = ({"source": s, "target_style": target, "text": t, **extra} for s, t in zip(args.sentences, texts))
    emit(records, args.json, lambda r: f"{r['source']}\n  -> [{r['target_style']}] {r['text']}")
    return 0


def _auto_alpha(model, examples: dict[str, list[str]], args: argparse.Namespace) -> float:
    """``--alpha auto``: :func:`~textvae.evaluation.latent_use.choose_alpha` on the examples, reported on stderr."""
    from textvae.evaluation.latent_use import choose_alpha

    alpha, summary = choose_alpha(model, examples, shift_mode=args.shift, seed=args.seed)
    table = ", ".join(f"{r['alpha']:g}: {100 * r['target_share']:.0f}% / {r['bleu']:.1f}" for r in summary)
    print(f"alpha auto: {alpha:g} (moved share / BLEU to the source per alpha: {table})", file=sys.stderr)
    return alpha


def _style_examples(model, args: argparse.Namespace) -> tuple[dict[str, list[str]], str]:
    """Labelled example sentences ``{style: [text]}`` from --data or --style-a/--style-b, and the target."""
    from textvae.inference import style

    cap = None if args.max_examples == 0 else args.max_examples
    if cap is not None and cap < 0:
        raise TextVAEError(f"--max-examples must be >= 0, got {args.max_examples}")
    if args.data and (args.style_a or args.style_b):
        raise TextVAEError("give --data FILE --label-column COL, or --style-a FILE --style-b FILE, not both")
    if args.data:
        if not args.label_column:
            raise TextVAEError("--data needs --label-column COL")
        text_column = args.text_column or model.data_config.text_column
        examples = style.read_labelled(args.data, args.label_column, text_column, cap, args.seed)
        if not args.target_style:
            raise TextVAEError(f"give --target-style, one of {', '.join(examples)}")
        target = args.target_style
    elif args.style_a and args.style_b:
        examples = style.read_style_files(args.style_a, args.style_b, cap, args.seed)
        target = args.target_style or "b"
    else:
        raise TextVAEError("give labelled examples: --data FILE --label-column COL, or --style-a FILE --style-b FILE")
    style.check_styles(list(examples), target, args.source_style)  # before the (slow) encoding
    return examples, target


def run_reconstruct(args: argparse.Namespace) -> int:
    decoding = decoding_from_args(args)
    sentences = _inputs(args)
    model = load_model(args)
    decoding = with_bans(decoding, args, model)
    labels = [args.label] if args.label is not None else None
    texts = model.reconstruct(sentences, decoding, labels, generator=_generator(model, args))
    emit(
        ({"source": s, "text": t} for s, t in zip(sentences, texts)),
        args.json,
        lambda r: f"{r['source']}\n  -> {r['text']}",
    )
    return 0


def run_encode(args: argparse.Namespace) -> int:
    from textvae.inference.latent_tools import save_codes

    sentences = _inputs(args)
    model = load_model(args)
    post = model.encode_text(sentences, [args.label] if args.label is not None else None)
    if args.output:
        path = save_codes(post, args.output, overwrite=args.force)
        record = {"output": str(path), "shape": [len(sentences), 2, model.config.latent_size]}
        emit([record], args.json, lambda r: f"wrote {r['shape'][0]} codes, shape {r['shape']}, to {r['output']}")
        return 0
    records = (
        {"text": s, "mu": [round(x, 6) for x in m], "logvar": [round(x, 6) for x in lv]}
        for s, m, lv in zip(sentences, post.mu.tolist(), post.logvar.tolist())
    )
    emit(records, args.json, lambda r: f"{r['text']}\n  mu: {' '.join(f'{x:.3f}' for x in r['mu'])}")
    return 0


def run_analogy(args: argparse.Namespace) -> int:
    from textvae.inference.latent_tools import analogy

    decoding = decoding_from_args(args)
    for s in (args.a, args.b, args.c):
        require_text(s)
    model = load_model(args)
    decoding = with_bans(decoding, args, model)
    text = analogy(model, args.a, args.b, args.c, decoding, args.label, _generator(model, args))
    emit([{"a": args.a, "b": args.b, "c": args.c, "text": text}], args.json, lambda r: r["text"])
    return 0


def run_traverse(args: argparse.Namespace) -> int:
    from textvae.inference.latent_tools import traverse

    decoding = decoding_from_args(args)
    if args.sentence is not None:
        require_text(args.sentence)
    model = load_model(args)
    decoding = with_bans(decoding, args, model)
    records = traverse(
        model, args.dim, args.steps, args.sentence, args.span, decoding, args.label, _generator(model, args)
    )
    emit(records, args.json, lambda r: f"dim {r['dim']} {r['offset']:+6.2f}  {r['text']}")
    return 0
