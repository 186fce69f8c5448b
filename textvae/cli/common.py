"""Argument helpers shared by the commands that load a model and decode text."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable
from typing import Any

from textvae.errors import TextVAEError


def add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="a model directory (or a run directory: its best/ checkpoint), or a Hub id user/name")
    p.add_argument("--revision", default=None, help="Hub branch, tag or commit (for a Hub id; default main)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default cpu)")
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
    g.add_argument("--seed", type=int, default=0, help="random seed (prior samples, sampling)")


def decoding_from_args(args: argparse.Namespace):
    """A validated :class:`DecodingConfig` from the decoding flags; bad values become a user error."""
    from textvae.model.decoding import DecodingConfig

    strategy = args.strategy
    if strategy is None:
        if args.beam is not None:
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
    )
    try:
        return cfg.validate()
    except ValueError as e:
        raise TextVAEError(str(e)) from None


def load_model(args: argparse.Namespace):
    """``TextVAE.from_pretrained(args.model)`` on ``args.device`` (errors are user errors)."""
    from textvae.model.vae import TextVAE
    from textvae.training.trainer import resolve_device

    return TextVAE.from_pretrained(
        args.model, device=resolve_device(args.device, "--device"), revision=getattr(args, "revision", None)
    )


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
