"""Generation commands: ``sample``, ``interpolate``, ``mix``, ``reconstruct``, ``encode``, ``analogy`` and
``traverse``. Each parses its arguments, calls :mod:`textvae.inference` and prints one line per result
(one JSON object per line with ``--json``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from textvae.cli import mix
from textvae.cli.common import (
    decoding_from_args,
    emit,
    generation_command,
    load_model,
    require_text,
    seeded_generator,
    with_bans,
)
from textvae.errors import DataError, TextVAEError

_LABEL_HELP = "label for a conditional model (model.conditional=true): encode and decode with it"


def register(sub: argparse._SubParsersAction) -> None:
    p = generation_command(sub, "sample", "sentences from the prior, or near a given sentence", 'JSON: {"text": ...}')
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

    p = generation_command(
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

    mix.register(sub)

    p = generation_command(
        sub,
        "reconstruct",
        "encode sentences to their posterior means and decode them",
        'JSON: {"source": ..., "text": ...}',
    )
    _add_inputs(p)
    p.add_argument("--label", help=_LABEL_HELP)
    p.set_defaults(func=run_reconstruct)

    p = generation_command(
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

    p = generation_command(
        sub, "analogy", "decode mu(a) - mu(b) + mu(c): a is to b as ? is to c", 'JSON: {"a", "b", "c", "text"}'
    )
    for name in ("a", "b", "c"):
        p.add_argument(name, help=f"sentence {name}")
    p.add_argument("--label", help=_LABEL_HELP)
    p.set_defaults(func=run_analogy)

    p = generation_command(
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
    g = seeded_generator(model, args)
    if args.random is not None:
        records = interpolate_random(model, args.steps, args.method, decoding, args.label, g, args.random)
    else:
        records = interpolate(model, args.sentences, args.steps, args.method, decoding, args.label, g)
    emit(records, args.json, lambda r: f"{r['alpha']:6.3f}  {r['text']}")
    return 0


def run_reconstruct(args: argparse.Namespace) -> int:
    decoding = decoding_from_args(args)
    sentences = _inputs(args)
    model = load_model(args)
    decoding = with_bans(decoding, args, model)
    labels = [args.label] if args.label is not None else None
    texts = model.reconstruct(sentences, decoding, labels, generator=seeded_generator(model, args))
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
    text = analogy(model, args.a, args.b, args.c, decoding, args.label, seeded_generator(model, args))
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
        model, args.dim, args.steps, args.sentence, args.span, decoding, args.label, seeded_generator(model, args)
    )
    emit(records, args.json, lambda r: f"dim {r['dim']} {r['offset']:+6.2f}  {r['text']}")
    return 0
