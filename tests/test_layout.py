"""The package's shape, as the README's "How it is built" describes it: no import cycles (not even
through imports inside functions or for types only), probing never asking policy, small modules,
a short top level, no module named like its own package.
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


def _resolve(package: str, level: int, module: str | None) -> str:
    base = package.split(".")[: len(package.split(".")) - level + 1]
    return ".".join(base + ([module] if module else []))


def _imports(path: Path, *, deferred: bool) -> set[str]:
    """The preflight modules `path` imports.

    Without `deferred`: when it is loaded (module level, TYPE_CHECKING out). With it: every
    import it holds, also inside functions and under TYPE_CHECKING, and the modules a lazy
    package's `_EXPORTS` names (loaded by its __getattr__): an import a function defers, or one
    only the type checker reads, is still a dependency a reader has to hold in their head.
    """
    module = _name(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found: set[str] = set()

    def add_from(node: ast.ImportFrom) -> None:
        target = _resolve(package, node.level, node.module) if node.level else node.module or ""
        if not target.startswith("preflight"):
            return
        found.add(target)
        for alias in node.names:  # `from . import boxes` imports a module
            candidate = f"{target}.{alias.name}"
            if any(_name(p) == candidate for p in MODULES):
                found.add(candidate)

    def add(node: ast.AST) -> None:
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("preflight"))
        elif isinstance(node, ast.ImportFrom):
            add_from(node)
        elif (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "_EXPORTS" for t in node.targets)
            and isinstance(node.value, ast.Dict)
        ):
            for value in node.value.values:  # name -> ".module" or "module" (relative)
                if isinstance(value, ast.Constant) and isinstance(value.value, str):
                    name = value.value if value.value.startswith(".") else f".{value.value}"
                    level = len(name) - len(name.lstrip("."))
                    found.add(_resolve(package, level, name.lstrip(".")))

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
            else:
                add(node)

    tree = ast.parse(path.read_text())
    if deferred:
        for node in ast.walk(tree):
            add(node)
    else:
        visit(tree.body)
    found.discard(module)
    return found


def _ancestors(name: str) -> set[str]:
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def _graph(*, deferred: bool) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in MODULES:
        name = _name(path)
        edges: set[str] = set()
        for target in _imports(path, deferred=deferred):
            # Importing a.b runs a's __init__ first; a module's own packages are already loading.
            edges |= ({target} | _ancestors(target)) - _ancestors(name) - {name}
        graph[name] = edges
    assert len(graph) > 50  # the walk found the package
    return graph


def _first_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def walk(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node] & graph.keys()):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := walk(nxt)) is not None:
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := walk(node)) is not None:
            return cycle
    return None


def test_no_import_cycles_at_load_time() -> None:
    cycle = _first_cycle(_graph(deferred=False))
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_no_import_cycles_even_through_deferred_or_type_only_imports() -> None:
    # Every dependency goes one way: a module that imports another inside a function, or for
    # its annotations only, still depends on it (issue 24: cli.commands <-> cli.parser,
    # ledger.backend <-> ledger.store, probing.deadline -> options -> transport -> deadline).
    graph = _graph(deferred=True)
    assert "preflight.ledger.store" in graph["preflight.ledger"]  # _EXPORTS is followed
    cycle = _first_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_probing_never_imports_policy() -> None:
    # The fetcher is handed the gate it applies (probing/gate.py); judging is the policy's.
    graph = _graph(deferred=True)
    upward = {
        name: sorted(
            t for t in targets if t == "preflight.policy" or t.startswith("preflight.policy.")
        )
        for name, targets in graph.items()
        if name.startswith("preflight.probing")
    }
    assert {name: found for name, found in upward.items() if found} == {}
    assert "preflight.probing.gate" in graph["preflight.probing.remote"]  # the walk saw it


def test_no_module_is_longer_than_the_style_allows() -> None:
    long = {_name(p): n for p in MODULES if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, long


def test_the_top_level_is_short_and_no_module_shadows_its_package() -> None:
    top = [p.stem for p in PACKAGE.glob("*.py")]
    assert len(top) <= MAX_TOP_LEVEL, sorted(top)
    shadowing = [p for p in MODULES if p.stem == p.parent.name]
    assert not shadowing, shadowing
