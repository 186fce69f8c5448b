"""The ``textvae`` command. Each subcommand lives in its own module and only parses arguments, builds
config objects and calls the library; user errors become a one-line message and exit status 2."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from textvae import __version__
from textvae.errors import TextVAEError

#: Modules that each define ``register(subparsers)``; order is the order of ``textvae --help``.
_COMMAND_MODULES = ("textvae.cli.train", "textvae.cli.generate", "textvae.cli.evaluate", "textvae.cli.hub")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's usage errors: one line, exit 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = _Parser(prog="textvae", description="Variational autoencoders over sentences.")
    parser.add_argument("--version", action="version", version=f"textvae {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except TextVAEError as e:
        print(f"textvae {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"textvae {args.command}: interrupted", file=sys.stderr)
        return 130
