"""The repository's layout keeps its promises: the control plane never
shadows the standard library's ``operator``, and the runtime package stays
free of the control plane's heavy dependencies."""

from __future__ import annotations

import subprocess
import sys
import tomllib

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.unit


def test_stdlib_operator_is_not_shadowed_from_the_repo_root() -> None:
    out = subprocess.run(
        [sys.executable, "-c", "import operator; print(operator.add(1, 2), operator.__file__)"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out[0] == "3"
    assert not out[1].startswith(str(REPO / "operator"))


def test_runtime_depends_on_neither_kopf_nor_the_kubernetes_client() -> None:
    project = tomllib.loads((REPO / "runtime/pyproject.toml").read_text())["project"]
    deps = " ".join(project["dependencies"]).lower()
    assert "kopf" not in deps and "kubernetes" not in deps


def test_runtime_source_imports_no_control_plane_code() -> None:
    offenders = [
        str(path.relative_to(REPO))
        for path in (REPO / "runtime/src/ember_runtime").rglob("*.py")
        for line in path.read_text().splitlines()
        if line.lstrip().startswith(("import ", "from "))
        and any(mod in line for mod in ("kopf", "kubernetes", "ember_operator"))
    ]
    assert offenders == []
