"""Argument helpers shared by the commands that load a model and decode text."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from textvae.errors import TextVAEError

if TYPE_CHECKING:
    from textvae.data.eval_data import EvalData
    from textvae.model.vae import TextVAE


def add_model_args(p: argparse.ArgumentParser, precision: str = "auto") -> None:
    """The model, where it runs, and its matrix products' ``--precision`` (default ``precision``: ``auto``
    for commands that generate text; the commands that report likelihoods default to ``float32``)."""
    p.add_argument("model", help="a model directory (or a run directory: its best/ checkpoint), or a Hub id user/name")
    p.add_argument("--revision", default=None, help="Hub branch, tag or commit (for a Hub id; default main)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default cpu)")
    p.add_argument(
        "--precision",
        choices=["auto", "float32", "bfloat16"],
        default=precision,
        help=f"matrix products in bfloat16 (auto: where the device has native bf16 units) or float32 "
        f"(default {precision})",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object per line")


def add_decoding_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("decoding")
    g.add_argument("--strategy", choices=["greedy", "sample", "beam"], default=None, help="default: greedy")
    g.add_argument("--temperature", type=float, default=1.0)
    g.add_argument("--top-k", type=int, default=0, help="sample from the k most likely tokens (implies sample)")
    g.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass (implies sample)")
    g.add_argument("--beam", type=int, default=None, help="beam width (implies beam search)")
    g.add_argument("--length-penalty", type=float, default=1.0, help="beam search length normalisation")
    g.add_argument("--max-length", type=int, default=50, help="maximum generated tokens")
    g.add_argument("--min-length", type=int, default=0, help="tokens before the end token may come (default 0)")
    g.add_argument(
        "--repetition-penalty", type=float, default=1.0, help="CTRL penalty on already generated tokens (>= 1; 1: off)"
    )
    g.add_argument("--no-unk", action="store_true", help="never generate <unk>")
    g.add_argument("--ban", action="append", default=[], metavar="WORD", help="never generate WORD (repeatable)")
    g.add_argument("--raw", action="store_true", help="print the raw tokens (no detokenizing or recasing)")
    g.add_argument("--seed", type=int, default=0, help="random seed (prior samples, sampling)")


def _conflicts(args: argparse.Namespace, strategy: str | None) -> None:
    """Refuse decoding flags that the chosen strategy would silently ignore (only those set explicitly)."""
    sampling = [f for f, on in (("--temperature", args.temperature != 1.0), ("--top-k", args.top_k > 0),
                                ("--top-p", args.top_p < 1.0)) if on]  # fmt: skip
    beam = [f for f, on in (("--beam", args.beam is not None), ("--length-penalty", args.length_penalty != 1.0)) if on]
    if strategy == "greedy" and (sampling or beam):
        raise TextVAEError(
            f"{(sampling + beam)[0]} does not apply to --strategy greedy; drop it or change the strategy"
        )
    if strategy == "sample" and beam:
        raise TextVAEError(f"{beam[0]} applies to beam search; it cannot be combined with --strategy sample")
    if strategy == "beam" and sampling:
        raise TextVAEError(f"{sampling[0]} applies to sampling; it cannot be combined with --strategy beam")
    if strategy is None and sampling and beam:
        raise TextVAEError(f"{sampling[0]} applies to sampling; it cannot be combined with {beam[0]}")


def decoding_from_args(args: argparse.Namespace):
    """A validated :class:`DecodingConfig` from the decoding flags; bad values and flags that contradict
    each other become a user error. ``--ban`` words need the model: :func:`with_bans` adds them."""
    from textvae.model.decoding import DecodingConfig

    _conflicts(args, args.strategy)
    strategy = args.strategy
    if strategy is None:
        if args.beam is not None or args.length_penalty != 1.0:
            strategy = "beam"
        elif args.top_k > 0 or args.top_p < 1.0 or args.temperature != 1.0:
            strategy = "sample"
        else:
            strategy = "greedy"
    cfg = DecodingConfig(
        strategy=strategy,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        max_length=args.max_length,
        beam_size=args.beam if args.beam is not None else 4,
        length_penalty=args.length_penalty,
        min_length=args.min_length,
        repetition_penalty=args.repetition_penalty,
        ban_unk=args.no_unk,
        detokenize=not args.raw,
    )
    try:
        return cfg.validate()
    except ValueError as e:
        message = str(e)
        for field, flag in _FLAG_OF.items():  # the message names what the user typed
            message = message.replace(field, flag)
        raise TextVAEError(message) from None


#: DecodingConfig fields -> the flags that set them, for messages.
_FLAG_OF = {
    "repetition_penalty": "--repetition-penalty",
    "length_penalty": "--length-penalty",
    "min_length": "--min-length",
    "max_length": "--max-length",
    "beam_size": "--beam",
    "temperature": "--temperature",
    "top_k": "--top-k",
    "top_p": "--top-p",
}


def with_bans(decoding, args: argparse.Namespace, model):
    """``decoding`` with the ``--ban`` words of ``args`` as ids of ``model``'s vocabulary."""
    import dataclasses

    words = getattr(args, "ban", None)
    if not words:
        return decoding
    if model.tokenizer is None:
        raise TextVAEError("--ban needs the model's tokenizer")
    tok, ids = model.tokenizer, []
    for word in words:
        pieces = [i for i in tok.encode_batch([word])[0]]
        if not pieces or tok.unk_id in pieces:
            raise TextVAEError(f"--ban {word!r}: not in the model's vocabulary (use --no-unk to ban <unk>)")
        if len(pieces) > 1:
            raise TextVAEError(f"--ban {word!r}: the model splits it into {len(pieces)} tokens; ban one token")
        ids.append(pieces[0])
    if model.config.eos_id in ids:
        raise TextVAEError("--ban: the end token cannot be banned (generation would never stop)")
    return dataclasses.replace(decoding, bad_ids=tuple(ids))


def load_model(args: argparse.Namespace, path: str | None = None):
    """``TextVAE.from_pretrained(args.model)`` (or another model's ``path``, with no ``--revision``) on
    ``args.device`` in ``args.precision`` (errors are user errors)."""
    from textvae.model.vae import TextVAE
    from textvae.training.devices import resolve_device

    revision = getattr(args, "revision", None) if path is None else None  # --revision names args.model's
    model = TextVAE.from_pretrained(
        path or args.model, device=resolve_device(args.device, "--device"), revision=revision
    )
    model.set_precision(getattr(args, "precision", "float32"))
    return model


def emit(records: Iterable[dict[str, Any]], as_json: bool, fmt: Callable[[dict[str, Any]], str]) -> None:
    """Print each record as one JSON line (``--json``) or as ``fmt(record)``; flushes per line so that
    another program can read results as they come."""
    for r in records:
        print(json.dumps(r, ensure_ascii=False) if as_json else fmt(r))
        sys.stdout.flush()


def require_text(text: str, what: str = "sentence") -> str:
    """Reject empty input with a clear message."""
    if not text or not text.strip():
        raise TextVAEError(f"the {what} is empty; give some text")
    return text


# -- argument types and the corpus arguments of evaluate / score / analyze ---------------------------------
def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    return _int_at_least(text, 1)


def nonnegative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    return _int_at_least(text, 0)


def number_or_auto(text: str) -> float | str:
    """argparse type: a number, or ``auto``."""
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'auto', got {text!r}") from None


def _int_at_least(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
    return value


def add_data_args(p: argparse.ArgumentParser, what: str = "sentences to evaluate") -> None:
    """``--data``, ``--text-column``, ``--max-sentences``, ``--length-filter`` and ``--batch-size`` (shared with
    ``analyze``)."""
    p.add_argument("--data", required=True, metavar="FILE", help=f"{what}: text (one per line), jsonl, csv/tsv")
    p.add_argument(
        "--text-column", default=None, help="text column of a jsonl/csv --data (default: the model's training one)"
    )
    p.add_argument(
        "--max-sentences", type=positive_int, default=None, metavar="N", help="use only the first N sentences"
    )
    p.add_argument(
        "--length-filter",
        action="store_true",
        help="drop sentences outside the training data.min_length/max_length (default: keep them all)",
    )
    p.add_argument("--batch-size", type=positive_int, default=32, metavar="B", help="sentences per batch (default 32)")


def load_data(args: argparse.Namespace, model: TextVAE, label_columns: tuple[str, ...] = ()) -> EvalData:
    """The corpus of ``--data``, cleaned as the model's training data; reports its row counts on stderr."""
    from textvae.data.eval_data import load_eval_data

    data = load_eval_data(
        model,
        args.data,
        label_columns=label_columns,
        length_filter=args.length_filter,
        max_sentences=args.max_sentences,
        key="--data",
        flags={"text_column": "--text-column", "label_column": "--label-column"},
        text_column=args.text_column,
    )
    print(f"{args.data}: {data.describe()}", file=sys.stderr)
    return data


def generation_command(
    sub: argparse._SubParsersAction, name: str, summary: str, output: str, decoding: bool = True
) -> argparse.ArgumentParser:
    """A generation subcommand's parser: the model arguments and, unless ``decoding`` is False, decoding."""
    p = sub.add_parser(name, help=summary, description=f"{summary[0].upper()}{summary[1:]}. {output}.")
    add_model_args(p)
    if decoding:
        add_decoding_args(p)
    return p


def seeded_generator(model, args: argparse.Namespace):
    """A torch generator seeded from ``--seed`` on the model's device (None without a seed)."""
    from textvae.inference.sampling import seeded

    return seeded(model, args.seed)
