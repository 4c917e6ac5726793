"""The runtime package keeps its shape: no import loops (not even lazy or
under ``TYPE_CHECKING``), the HTTP core below everything that serves
functions (the gateway reuses it), and modules that say why they exist."""

from __future__ import annotations

import ast

import pytest
from tests.conftest import REPO
from tests.layout_tools import import_graph, import_loops, package_modules

pytestmark = pytest.mark.unit

ROOT = REPO / "runtime/src"
MODULES = package_modules(ROOT, "ember_runtime")
# The root __init__ is the facade handlers import (``from ember_runtime
# import Response``, loaded lazily): every submodule "imports" it, and it
# imports the contract, so its edges would read as a loop with anything.
GRAPH = {
    name: deps - {"ember_runtime"} for name, deps in import_graph(MODULES, "ember_runtime").items()
}
# The app and the connection protocol sit a little above the project's ~300:
# each is one state machine (calls; a connection) that reads worse cut again.
MAX_LINES = 330


def test_no_import_loops() -> None:
    assert import_loops(GRAPH) == []


def test_the_http_core_imports_nothing_that_serves_functions() -> None:
    core = {n for n in MODULES if n.startswith("ember_runtime.http")}
    allowed = core | {"ember_runtime", "ember_runtime.errors"}
    offenders = {n: GRAPH[n] - allowed for n in core if GRAPH[n] - allowed}
    assert offenders == {}


@pytest.mark.parametrize("name", sorted(MODULES))
def test_each_module_is_small_and_says_why_it_exists(name: str) -> None:
    source = MODULES[name].read_text()
    assert ast.get_docstring(ast.parse(source)), f"{name} has no docstring"
    assert len(source.splitlines()) <= MAX_LINES, f"{name} is over {MAX_LINES} lines"
