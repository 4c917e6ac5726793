"""Fixtures for the operator's integration tests: the CRDs installed on the
local cluster, a throwaway namespace per test, and the operator running
in-process (kopf's KopfRunner) watching only that namespace."""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kopf.testing import KopfRunner
from kubernetes import config
from kubernetes.client.exceptions import ApiException

# The tests import their helpers as ``operator_kit`` (this directory is not a
# package: "operator" would shadow the standard library module).
sys.path.insert(0, str(Path(__file__).resolve().parent))

from operator_kit import Cluster, wait_for

REPO = Path(__file__).resolve().parents[3]


def install_crds(cluster: Cluster) -> None:
    for path in sorted((REPO / "crds").glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        name = crd["metadata"]["name"]
        try:
            live = cluster.ext.read_custom_resource_definition(name)
            crd["metadata"]["resourceVersion"] = live.metadata.resource_version
            cluster.ext.replace_custom_resource_definition(name, crd)
        except ApiException as e:
            if e.status != 404:
                raise
            cluster.ext.create_custom_resource_definition(crd)

        def established(name: str = name) -> bool:
            live = cluster.ext.read_custom_resource_definition(name)
            return any(
                c.type == "Established" and c.status == "True"
                for c in (live.status.conditions or [])
            )

        wait_for(established, timeout=30, what=f"CRD {name} established")


@pytest.fixture(scope="session")
def cluster(kubeconfig: str) -> Cluster:
    config.load_kube_config(config_file=kubeconfig)
    c = Cluster()
    install_crds(c)
    # Schema changes take a moment to reach every apiserver handler.
    time.sleep(1)
    return c


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    name = f"ember-it-{uuid.uuid4().hex[:8]}"
    cluster.core.create_namespace({"metadata": {"name": name, "labels": {"ember.dev/test": "1"}}})
    try:
        yield name
    finally:
        cluster.core.delete_namespace(name, propagation_policy="Background")


@pytest.fixture
def operator_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Short retry and deadline settings so failures show up within a test."""
    monkeypatch.setenv("EMBER_USER_ERROR_RETRY_SECONDS", "1")
    monkeypatch.setenv("EMBER_PROGRESS_DEADLINE_SECONDS", "8")
    monkeypatch.setenv("EMBER_GATEWAY_URL", "http://gw.test")


def run_operator(namespace: str) -> KopfRunner:
    return KopfRunner(
        ["run", "--standalone", "--namespace", namespace, "-m", "ember_operator.reconcile"],
        timeout=60,
    )


@pytest.fixture
def operator(namespace: str, operator_env: None) -> Iterator[KopfRunner]:
    with run_operator(namespace) as runner:
        yield runner
    assert runner.exception is None, runner.output
    assert runner.exit_code == 0, runner.output
