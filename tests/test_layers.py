"""The house is one-way: each package imports only the layers below it, and no module imports itself back.

governance  <-  fedgov  <-  client, server  <-  simulations, deploy  <-  cli

Every import counts, at module level or inside a function: a late import is still a
dependency. The walk reads the source with `ast`, so it sees imports that a test run
never executes.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LAYERS = {"governance": 0, "fedgov": 1, "client": 2, "server": 2, "simulations": 3, "deploy": 3, "cli": 4}


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for package in LAYERS for p in (REPO / package).rglob("*.py")}


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """Every project module `name` imports, resolved to the longest known module name."""
    found = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            # a module's own enclosing packages run before it anyway: importing a sibling through
            # them (`from governance.ledger import envelope`) is no dependency on the package
            if target and target != name and not name.startswith(target + "."):
                found.add(target)
    return found


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _layer(module: str) -> tuple[str, int]:
    top = module.split(".")[0]
    return top, LAYERS[top]


def test_the_walk_sees_every_package():
    assert {m.split(".")[0] for m in MODULES} == set(LAYERS)
    assert len(MODULES) > 60


@pytest.mark.parametrize("package", sorted(LAYERS))
def test_a_package_imports_only_itself_and_the_layers_below(package):
    upward = sorted(
        f"{module} imports {target}"
        for module, targets in GRAPH.items() if module.split(".")[0] == package
        for target in targets
        if _layer(target)[0] != package and _layer(target)[1] >= LAYERS[package]
    )
    assert upward == []


def test_no_import_cycles():
    """Tarjan's strongly connected components: any component of more than one module is a cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # recursion depth is bounded by the number of modules (~100)
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(GRAPH):
        if module not in index:
            visit(module)
    assert cycles == [], cycles


def test_the_deployed_apps_cannot_reach_the_simulation_harness():
    """client/ and server/ import nothing from simulations/, directly or through another module."""
    reachable: set[str] = set()
    todo = [m for m in GRAPH if m.split(".")[0] in ("client", "server")]
    while todo:
        module = todo.pop()
        if module not in reachable:
            reachable.add(module)
            todo.extend(GRAPH[module])
    assert sorted(m for m in reachable if m.startswith("simulations")) == []


def test_governance_imports_no_flower():
    flower = sorted(
        str(path.relative_to(REPO)) for name, path in MODULES.items() if name.startswith("governance")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, (ast.Import, ast.ImportFrom))
        and any((alias.name if isinstance(node, ast.Import) else node.module or "").split(".")[0] == "flwr"
                for alias in node.names)
    )
    assert flower == []
