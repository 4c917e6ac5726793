"""Shared fixtures for every tier, and the guard that keeps cluster tests on
Ember's own local cluster.

Tiers are pytest markers (``unit``, ``integration``, ``e2e``), applied by each
module's ``pytestmark``. Cluster-facing fixtures refuse any kubeconfig whose
context is not one this project created, so a stray ``KUBECONFIG`` can never
point the tests at somebody's real cluster.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
ALLOWED_CONTEXTS = {"ember-local", "kind-ember"}


def _kubeconfig_path() -> Path:
    return Path(os.environ.get("EMBER_KUBECONFIG", "/var/lib/ember-cluster/kubeconfig"))


@pytest.fixture(scope="session")
def kubeconfig() -> str:
    """Path to the kubeconfig of the project's local cluster (``make cluster``)."""
    path = _kubeconfig_path()
    if not path.exists():
        pytest.fail(f"no cluster kubeconfig at {path}: run `make cluster` first (make test does)")
    import yaml

    ctx = yaml.safe_load(path.read_text()).get("current-context")
    if ctx not in ALLOWED_CONTEXTS:
        pytest.fail(f"refusing kube context {ctx!r}: tests only run on {sorted(ALLOWED_CONTEXTS)}")
    os.environ["KUBECONFIG"] = str(path)
    return str(path)
