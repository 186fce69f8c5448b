"""The README's promises: every command example names a real subcommand, flags it accepts, and config keys
that exist. (Each example's ``--help`` runs; the examples themselves need trained models and data.)"""

import re
import shlex
from pathlib import Path

import pytest

from textvae.cli import build_parser, main
from textvae.config import all_keys

README = Path(__file__).resolve().parents[1] / "README.md"


def command_examples() -> list[list[str]]:
    """The ``textvae ...`` command lines of the README's code blocks, continuation lines joined, as argv
    lists without the program name (comments and shell syntax dropped)."""
    blocks, current, inside = [], [], False
    for line in README.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            if inside:
                blocks.append("\n".join(current) + "\n")
            current, inside = [], not inside
        elif inside:
            current.append(line)
    out = []
    for block in blocks:
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = line.strip().removeprefix("$ ")
            m = re.match(r"^(?:\.venv/bin/)?textvae\s+(.*)$", line)
            if not m:
                continue
            line = re.split(r"\s+#\s", m.group(1))[0]  # a trailing comment
            line = re.split(r"\s*(?:\||>|&&|;)\s", line)[0]  # pipes, redirections
            try:
                argv = shlex.split(line)
            except ValueError:
                continue
            out.append(argv)
    return out


EXAMPLES = command_examples()


def subparsers() -> dict:
    parser = build_parser()
    action = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return action.choices


def test_the_readme_has_command_examples():
    assert len(EXAMPLES) >= 30
    assert {a[0] for a in EXAMPLES} >= {"train", "demo", "sample", "mix", "evaluate", "plot", "push"}


@pytest.mark.parametrize("argv", EXAMPLES, ids=lambda a: " ".join(a)[:60])
def test_each_example_uses_a_real_command_and_real_flags_and_keys(argv):
    commands = subparsers()
    if argv[0] in ("--help", "--version", "COMMAND"):
        return
    assert argv[0] in commands, f"README: unknown command {argv[0]!r}"
    options = {s for a in commands[argv[0]]._actions for s in a.option_strings}
    for word in argv[1:]:
        flag = word.strip("[]").split("=")[0]
        if re.fullmatch(r"--[a-z][a-z0-9-]*", flag):
            assert flag in options, f"README: textvae {argv[0]} has no {flag}"
        key = re.fullmatch(r"([a-z]+\.[a-z_]+)=.*", word.strip("\"'"))
        if key:
            assert key.group(1) in all_keys(), f"README: unknown config key {key.group(1)}"


@pytest.mark.parametrize("command", sorted({a[0] for a in EXAMPLES if a[0] in subparsers()}))
def test_each_readme_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0
    assert "usage: textvae " + command in capsys.readouterr().out


def python_imports() -> list[tuple[str, str, str]]:
    """``(file, module, name)`` for each ``from textvae... import name`` line in the README and docs/."""
    out = []
    for path in [README, *sorted((README.parent / "docs").glob("*.md"))]:
        for line in path.read_text(encoding="utf-8").splitlines():
            m = re.match(r"\s*from (textvae[\w.]*) import ([\w, ]+)$", line)
            if m:
                out += [(path.name, m.group(1), n.strip()) for n in m.group(2).split(",") if n.strip()]
    return out


def test_the_docs_have_python_examples():
    assert len(python_imports()) >= 10


@pytest.mark.parametrize(("doc", "module", "name"), python_imports())
def test_each_documented_import_exists(doc, module, name):
    """Python examples in the README and docs import names that exist (a moved function breaks this)."""
    import importlib

    assert hasattr(importlib.import_module(module), name), f"{doc}: from {module} import {name}"
