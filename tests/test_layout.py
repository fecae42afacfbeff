"""The package's shape, as the README's "How it is built" describes it: no import cycles, small
modules, a short top level, no module named like its own package.
"""

from __future__ import annotations

import ast
from pathlib import Path

from .conftest import ROOT

PACKAGE = ROOT / "preflight"
MODULES = sorted(PACKAGE.rglob("*.py"))
MAX_LINES = 450
MAX_TOP_LEVEL = 12


def _name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports_at_load(path: Path) -> set[str]:
    """The preflight modules `path` imports when it is loaded: module level, TYPE_CHECKING out.

    Imports inside functions run later and are how a module defers a heavy or upward dependency,
    so they are not edges of the load-time graph.
    """
    module = _name(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.If) and _is_type_checking(node.test):
                visit(node.orelse)
                continue
            if isinstance(node, (ast.If, ast.Try)):
                visit(node.body)
                visit(getattr(node, "orelse", []))
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)
                visit(getattr(node, "finalbody", []))
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name.startswith("preflight"))
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                if not target.startswith("preflight"):
                    continue
                found.add(target)
                for alias in node.names:  # `from . import boxes` imports a module
                    candidate = f"{target}.{alias.name}"
                    if any(_name(p) == candidate for p in MODULES):
                        found.add(candidate)

    visit(ast.parse(path.read_text()).body)
    found.discard(module)
    return found


def _ancestors(name: str) -> set[str]:
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def test_no_import_cycles_at_load_time() -> None:
    graph: dict[str, set[str]] = {}
    for path in MODULES:
        name = _name(path)
        edges: set[str] = set()
        for target in _imports_at_load(path):
            # Importing a.b runs a's __init__ first; a module's own packages are already loading.
            edges |= ({target} | _ancestors(target)) - _ancestors(name) - {name}
        graph[name] = edges
    assert len(graph) > 50  # the walk found the package
    state: dict[str, int] = {}
    stack: list[str] = []

    def walk(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node] & graph.keys()):
            if state.get(nxt) == 1:
                raise AssertionError(
                    "import cycle: " + " -> ".join([*stack[stack.index(nxt) :], nxt])
                )
            if nxt not in state:
                walk(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            walk(node)


def test_no_module_is_longer_than_the_style_allows() -> None:
    long = {_name(p): n for p in MODULES if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, long


def test_the_top_level_is_short_and_no_module_shadows_its_package() -> None:
    top = [p.stem for p in PACKAGE.glob("*.py")]
    assert len(top) <= MAX_TOP_LEVEL, sorted(top)
    shadowing = [p for p in MODULES if p.stem == p.parent.name]
    assert not shadowing, shadowing
