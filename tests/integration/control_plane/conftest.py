"""Fixtures for the control plane's integration tests: the CRDs installed on
the local cluster, a throwaway namespace per test, and the operator running
in-process (kopf's KopfRunner) watching only that namespace."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from kopf.testing import KopfRunner
from kubernetes import config

from tests.integration.control_plane.kit import Cluster, run_operator
from tests.kube_helpers import install_crds


@pytest.fixture(scope="session")
def cluster(kubeconfig: str) -> Cluster:
    config.load_kube_config(config_file=kubeconfig)
    c = Cluster()
    install_crds(c.api)
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


@pytest.fixture
def operator(namespace: str, operator_env: None) -> Iterator[KopfRunner]:
    with run_operator(namespace) as runner:
        yield runner
    assert runner.exception is None, runner.output
    assert runner.exit_code == 0, runner.output
