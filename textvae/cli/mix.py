"""The ``mix`` command: move sentences to another style by an attribute vector (editing the sentence by
default, or decoding a moved code), by mixing the style-carrying dimensions, or by conditional decoding."""

from __future__ import annotations

import argparse
import sys

from textvae.cli.common import (
    decoding_from_args,
    emit,
    generation_command,
    load_model,
    number_or_auto,
    require_text,
    seeded_generator,
    with_bans,
)
from textvae.errors import TextVAEError


def register(sub: argparse._SubParsersAction) -> None:
    p = generation_command(
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
    g.add_argument("--text-column", help="the text column of --data (default: the one the model was trained on)")
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
    g.add_argument(
        "--lm", metavar="MODEL", help="edit: a language model (trained on the same corpus with model.use_latent=false) "
        "whose NLL of each candidate counts against it too: more fluent edits",
    )  # fmt: skip
    g.add_argument("--dims", type=int, default=None, metavar="K", help="dims: take the K most style-predictive dims")
    g.add_argument("--dim-threshold", type=float, help="dims: take dims with |2AUC-1| >= this (default 0.5)")
    g.add_argument("--style-sentence", metavar="TEXT", help="dims: copy the style dims from it (default: target mean)")
    p.set_defaults(func=run_mix)


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
    if args.lm and (method != "attribute" or args.shift != "edit"):
        raise TextVAEError("--lm weighs the fluency of edits: use it with --shift edit (the default)")
    lm = load_model(args, args.lm) if args.lm else None
    extra: dict = {}  # --method dims: the dimensions used, in every record
    g = seeded_generator(model, args)
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
                alpha = _auto_alpha(model, examples, args, lm)
                extra = {"alpha": alpha}
            shares = style.example_word_shares(model, examples) if args.shift == "edit" else None
            texts = style.transfer_attribute(
                model, args.sentences, codes, target, args.source_style, alpha, decoding, g, args.shift, shares, lm
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


def _auto_alpha(model, examples: dict[str, list[str]], args: argparse.Namespace, lm=None) -> float:
    """``--alpha auto``: :func:`~textvae.evaluation.latent_use.choose_alpha` on the examples, reported on stderr."""
    from textvae.evaluation.latent_use import choose_alpha

    alpha, summary = choose_alpha(model, examples, shift_mode=args.shift, seed=args.seed, edit_lm=lm)
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
