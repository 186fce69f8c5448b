"""The ``textvae`` command. Each subcommand lives in its own module and only parses arguments, builds
config objects and calls the library; user errors become a one-line message and exit status 2."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import warnings
from collections.abc import Sequence

from textvae.errors import ParameterError, TextVAEError
from textvae.version import __version__

#: Modules that each define ``register(subparsers)``; order is the order of ``textvae --help``.
_COMMAND_MODULES = (
    "textvae.cli.train",
    "textvae.cli.generate",
    "textvae.cli.evaluate",
    "textvae.cli.analysis",
    "textvae.cli.hub",
)


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


class Terminated(BaseException):
    """SIGTERM, turned into an exception so that ``finally`` blocks run and the exit status is 143."""


def _raise_terminated(signum, frame) -> None:
    raise Terminated


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. Exit status: 0 success, 2 a user error (one line on stderr), 130 / 143 after
    SIGINT / SIGTERM (the shell's 128 + signal); a further signal while exiting cannot change that."""
    previous = None
    with contextlib.suppress(ValueError):  # only the main thread may set handlers; elsewhere the caller's stay
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    name = "textvae"
    args = None
    format_warning, warnings.formatwarning = warnings.formatwarning, _one_line_warning
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        name = f"textvae {args.command}"
        return int(args.func(args) or 0)
    except TextVAEError as e:
        message = e.spelled(flag_names(e.names, args)) if isinstance(e, ParameterError) else str(e)
        print(f"{name}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return _signalled(name, signal.SIGINT, "interrupted")
    except Terminated:
        return _signalled(name, signal.SIGTERM, "terminated (SIGTERM)")
    finally:
        warnings.formatwarning = format_warning
        if previous is not None and signal.getsignal(signal.SIGTERM) is _raise_terminated:
            signal.signal(signal.SIGTERM, previous)  # called in-process (tests, notebooks): leave no trace


#: How the commands spell library parameters whose flag is not ``--name`` (``_`` as ``-``).
_FLAGS = {
    "labels": "--label",
    "top_k": "--dims",
    "path": "--output",
    "overwrite": "--force",
    "num_points": "--random",
}


def flag_names(params: Sequence[str], args: argparse.Namespace | None) -> dict[str, str]:
    """The command-line spelling of each library parameter a :class:`ParameterError` names: ``-n`` for a
    one-letter name, else :data:`_FLAGS` or ``--name`` (a command may override with ``flag_names`` defaults)."""
    own = getattr(args, "flag_names", None) or {}
    return {p: own.get(p) or _FLAGS.get(p) or ("-" + p if len(p) == 1 else "--" + p.replace("_", "-")) for p in params}


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    return f"textvae: warning: {message}\n"


def _signalled(name: str, sig: signal.Signals, what: str) -> int:
    # Ignore the next Ctrl-C/SIGTERM: raised while exiting, it would escape main and make Python die by the
    # signal itself (exit status -2 / -15) instead of returning 130 / 143.
    for s in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(ValueError):
            signal.signal(s, signal.SIG_IGN)
    print(f"{name}: {what}", file=sys.stderr)
    return 128 + int(sig)
