"""The operator package keeps its shape: no import loops (not even under
``TYPE_CHECKING``: a loop there is a loop in the design), the client layer
below the handlers and renderers, and small modules that say why they exist.
"""

from __future__ import annotations

import ast

import pytest

from tests.conftest import REPO
from tests.layout_tools import import_graph, import_loops, package_modules

pytestmark = pytest.mark.unit

ROOT = REPO / "operator/src"
PACKAGE = ROOT / "ember_operator"
MAX_LINES = 300


MODULES = package_modules(ROOT, "ember_operator")
GRAPH = import_graph(MODULES, "ember_operator")


def test_no_import_loops() -> None:
    assert import_loops(GRAPH) == []


@pytest.mark.parametrize(
    ("layer", "must_not_import"),
    [
        ("ember_operator.kube", ("render", "reconcile", "diagnose", "status", "config", "gateway")),
        ("ember_operator.render", ("kube", "reconcile", "diagnose", "gateway")),
        ("ember_operator.diagnose", ("kube", "reconcile", "render", "gateway")),
        ("ember_operator.api", ("kube", "reconcile", "render", "diagnose", "gateway")),
        ("ember_operator.status", ("kube", "reconcile", "render", "diagnose", "gateway")),
        # The gateway is its own process: it reads the shared layers (kube,
        # render's names, diagnose's path rule), never the operator's handlers.
        ("ember_operator.gateway", ("reconcile", "handlers", "autoscaler")),
        ("ember_operator.reconcile", ("gateway",)),
    ],
)
def test_layers_only_import_downwards(layer: str, must_not_import: tuple[str, ...]) -> None:
    offenders = {
        (name, dep)
        for name, deps in GRAPH.items()
        if name == layer or name.startswith(layer + ".")
        for dep in deps
        if any(dep.startswith(f"ember_operator.{bad}") for bad in must_not_import)
    }
    assert offenders == set()


def test_the_kubernetes_client_is_imported_by_the_client_layer_only() -> None:
    offenders = [
        name
        for name, path in MODULES.items()
        if not name.startswith("ember_operator.kube")
        and any(
            line.lstrip().startswith(("import kubernetes", "from kubernetes"))
            for line in path.read_text().splitlines()
        )
    ]
    assert offenders == []


@pytest.mark.parametrize("name", sorted(MODULES))
def test_each_module_is_small_and_says_why_it_exists(name: str) -> None:
    source = MODULES[name].read_text()
    if not source.strip():
        return  # an empty __init__ (the API package) says nothing
    assert ast.get_docstring(ast.parse(source)), f"{name} has no docstring"
    assert len(source.splitlines()) <= MAX_LINES, f"{name} is over {MAX_LINES} lines"
