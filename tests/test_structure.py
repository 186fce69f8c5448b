"""The package's shape: imports point one way (no cycles) and no module grows past the size a reader holds.

Imports are read with :mod:`ast`, so lazy imports inside functions count too (they are still an edge in the
design); only ``if TYPE_CHECKING:`` blocks are skipped, since they never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "textvae"
MAX_LINES = 400


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_nodes(tree: ast.AST):
    """Every node except those under ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            stack.extend(node.orelse)
            continue
        yield node
        stack.extend(ast.iter_child_nodes(node))


def import_graph() -> dict[str, set[str]]:
    """``{module: modules of textvae it imports}``; ``from pkg import name`` counts as importing ``pkg.name``
    when that is a module, else ``pkg``."""
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps: set[str] = set()
        for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name in files)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, *([node.module] if node.module else [])])
                for a in node.names:
                    sub = f"{base}.{a.name}"
                    deps.add(sub if sub in files else base)
        graph[name] = {d for d in deps if d in files and d != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as ``[a, b, ..., a]``, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                return path[path.index(dep) :] + [dep]
            if dep not in state and (found := visit(dep)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_import_graph_sees_lazy_and_relative_imports():
    graph = import_graph()
    assert "textvae.model.vae" in graph["textvae"]  # the lazy import inside textvae.__getattr__
    assert "textvae.config" in graph["textvae.model.vae"]


def test_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_no_module_over_the_size_limit():
    sizes = {_module_name(p): len(p.read_text(encoding="utf-8").splitlines()) for p in PACKAGE.rglob("*.py")}
    over = {name: n for name, n in sizes.items() if n > MAX_LINES}
    assert not over, f"modules over {MAX_LINES} lines: {over}"


def test_generation_commands_do_not_import_the_training_stack():
    """``textvae sample`` and friends load a model and decode: parsing their arguments, the model and the
    inference helpers must not pull in the trainer (DDP, optimizers) or 🤗 datasets (seconds of imports)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from textvae.cli import build_parser\n"
        "build_parser()\n"
        "import textvae.cli.common, textvae.inference.sampling, textvae.inference.interpolation\n"
        "from textvae.model.vae import TextVAE\n"
        "print(sorted(m for m in ('datasets', 'textvae.training.trainer', 'textvae.data.corpus') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


#: The layers, lowest first: a module may import its own layer and those below, never one above.
LAYERS = {
    **dict.fromkeys(("config", "config_values", "presets", "errors", "fileio", "version", "extras", "hf_config"), 0),
    "data": 1,
    **dict.fromkeys(("model", "hub", "model_card"), 2),
    **dict.fromkeys(("evaluation", "inference"), 3),
    "training": 4,
    **dict.fromkeys(("cli", "__main__"), 5),
}


def test_dependencies_point_one_way():
    def layer(module: str) -> int:
        parts = module.split(".")
        return LAYERS[parts[1]] if len(parts) > 1 else max(LAYERS.values()) + 1  # the package itself: on top

    upward = [f"{a} -> {b}" for a, deps in import_graph().items() for b in deps if layer(b) > layer(a)]
    assert not upward, "imports against the layering: " + ", ".join(sorted(upward))
