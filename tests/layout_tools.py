"""Reading a package's import graph from its source, for the layout tests
(the operator's and the runtime's): every import counts, at module level,
in a function or under ``TYPE_CHECKING`` — a loop anywhere is a loop in the
design."""

from __future__ import annotations

import ast
from pathlib import Path


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_modules(root: Path, package: str) -> dict[str, Path]:
    return {module_name(root, p): p for p in sorted((root / package).rglob("*.py"))}


def imports_of(modules: dict[str, Path], name: str, package: str) -> set[str]:
    """The package's modules ``name`` imports, plus the packages whose
    ``__init__`` running it implies."""
    tree = ast.parse(modules[name].read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    deps = set()
    for dep in found:
        while dep and dep not in modules:
            dep = dep.rpartition(".")[0]
        if dep.startswith(package) and dep != name:
            deps.add(dep)
            parent = dep.rpartition(".")[0]
            while parent:  # importing a.b.c runs a/__init__ and a/b/__init__
                deps.add(parent)
                parent = parent.rpartition(".")[0]
    return deps - {name}


def import_graph(modules: dict[str, Path], package: str) -> dict[str, set[str]]:
    return {name: imports_of(modules, name, package) for name in modules}


def import_loops(graph: dict[str, set[str]]) -> list[list[str]]:
    loops: list[list[str]] = []

    def visit(node: str, trail: list[str], done: set[str]) -> None:
        if node in trail:
            loops.append([*trail[trail.index(node) :], node])
            return
        if node in done:
            return
        for dep in sorted(graph[node]):
            visit(dep, [*trail, node], done)
        done.add(node)

    done: set[str] = set()
    for name in graph:
        visit(name, [], done)
    return loops
