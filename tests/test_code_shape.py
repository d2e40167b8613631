"""The code keeps its shape: short functions and classes, no import cycle (function-level
imports included), studies that return typed reports (docs/design.md §2).

The tree is read as files, not imported: mgap/engine, mgap/store and mgap/tui are links to
the top-level folders, and each module is named by its package path.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ROOTS = {
    "mgap": "mgap",
    "mgap.engine": "engine",
    "mgap.store": "store",
    "mgap.tui": "tui",
}
MAX_FUNCTION = 60
MAX_CLASS = 250


def _modules() -> dict[str, Path]:
    found = {}
    for package, folder in ROOTS.items():
        root = REPO / folder
        for path in root.rglob("*.py"):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join([package, *parts])] = path
    return found


MODULES = _modules()
TREES = {name: ast.parse(path.read_text()) for name, path in MODULES.items()}


def _is_typer_command(fn: ast.FunctionDef) -> bool:
    """Typer declares options in the signature: that part may run long, the body may not."""
    defaults = [*fn.args.defaults, *fn.args.kw_defaults]
    annotations = [a.annotation for a in [*fn.args.args, *fn.args.kwonlyargs]]
    return any(
        node is not None and "typer." in ast.unparse(node) for node in defaults + annotations
    )


def _body_start(fn: ast.FunctionDef) -> int:
    body = fn.body
    if len(body) > 1 and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        return body[1].lineno
    return body[0].lineno


def _long_definitions() -> list[str]:
    long = []
    for name, tree in TREES.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                start = _body_start(node) if _is_typer_command(node) else node.lineno
                if node.end_lineno - start + 1 > MAX_FUNCTION:
                    long.append(f"{name}.{node.name}: {node.end_lineno - start + 1} lines")
            elif isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > MAX_CLASS:
                long.append(
                    f"{name}.{node.name} (class): {node.end_lineno - node.lineno + 1} lines"
                )
    return long


def test_no_function_over_60_lines_and_no_class_over_250():
    assert _long_definitions() == []


def _imports(tree: ast.Module) -> set[str]:
    """Every mgap module this tree imports, at any depth (function-level imports too)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in names if name in MODULES}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def _graph() -> dict[str, set[str]]:
    """Edges into a package's __init__ are left out: importing a submodule runs it anyway."""
    packages = {name for name, path in MODULES.items() if path.name == "__init__.py"}
    return {
        name: {target for target in _imports(tree) if target != name and target not in packages}
        for name, tree in TREES.items()
    }


def test_no_import_cycle_even_through_function_level_imports():
    assert _cycles(_graph()) == []


def test_the_cycle_finder_sees_a_function_level_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
    tree = ast.parse("def f():\n    from mgap.engine.studies.gap import gap_report\n")
    assert "mgap.engine.studies.gap" in _imports(tree)


@pytest.mark.parametrize("name", sorted(name for name in MODULES if name.startswith("mgap.engine")))
def test_studies_return_typed_reports(name):
    """An engine `*_report` function returns its Report dataclass, never a bare dict."""
    for node in ast.walk(TREES[name]):
        if isinstance(node, ast.FunctionDef) and node.name.endswith("_report"):
            returns = ast.unparse(node.returns) if node.returns else ""
            assert returns and not returns.startswith(("dict", "Dict")), f"{node.name} -> {returns}"
