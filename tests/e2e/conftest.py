"""Fixtures for the e2e tier: a cluster with Ember's images in its runtime.

On this project's machines the cluster is hack/cluster (``make test`` starts
it and loads the images). With ``CLUSTER=kind`` the same tests run on a kind
cluster made by pytest-kind, for machines with Docker that can run privileged
containers and reach a registry.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from tests.kube_helpers import api_client, create_namespace, delete_namespace

RUNTIME_IMAGE = os.environ.get("EMBER_RUNTIME_IMAGE", "ember/runtime:dev")
CONTROLPLANE_IMAGE = os.environ.get("EMBER_CONTROLPLANE_IMAGE", "ember/controller:dev")
CAP_SYS_RESOURCE = 24


def _kind_blocker() -> str | None:
    """Why kind cannot run here, or None when it can."""
    if not shutil.which("kind"):
        return "kind path: no `kind` binary on PATH (go install sigs.k8s.io/kind)"
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapBnd:") and not int(line.split()[1], 16) >> CAP_SYS_RESOURCE & 1:
            return (
                "kind path: kind starts nodes with `docker run --privileged`, which fails on this "
                "machine because the capability bounding set lacks CAP_SYS_RESOURCE"
            )
    return None


@pytest.fixture(scope="session")
def e2e_kubeconfig(request: pytest.FixtureRequest) -> Iterator[str]:
    if os.environ.get("EMBER_CLUSTER", "local") != "kind":
        yield request.getfixturevalue("kubeconfig")
        return
    blocker = _kind_blocker()
    if blocker:
        pytest.skip(blocker)
    from pytest_kind import KindCluster  # type: ignore[import-untyped]

    cluster = KindCluster("ember")
    cluster.create()
    for image in (RUNTIME_IMAGE, CONTROLPLANE_IMAGE):
        cluster.load_docker_image(image)
    os.environ["KUBECONFIG"] = str(cluster.kubeconfig_path)
    yield str(cluster.kubeconfig_path)
    if os.environ.get("KEEP_CLUSTER") != "1":
        cluster.delete()


@pytest.fixture(scope="session")
def k8s(e2e_kubeconfig: str) -> client.ApiClient:
    return api_client(e2e_kubeconfig)


@pytest.fixture
def namespace(k8s: client.ApiClient) -> Iterator[str]:
    name = create_namespace(k8s, "e2e")
    yield name
    delete_namespace(k8s, name)


@pytest.fixture
def service_url(e2e_kubeconfig: str) -> Iterator[object]:
    """Return ``url(namespace, service, port)``: a base URL the test process can reach.

    On the local cluster kube-proxy's rules make ClusterIPs reachable from the
    host; on kind a ``kubectl port-forward`` stands in.
    """
    forwards: list[subprocess.Popen[bytes]] = []

    def url(namespace: str, service: str, port: int = 80) -> str:
        api = api_client(e2e_kubeconfig)
        svc = client.CoreV1Api(api).read_namespaced_service(service, namespace)
        if os.environ.get("EMBER_CLUSTER", "local") != "kind":
            return f"http://{svc.spec.cluster_ip}:{port}"
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            local = s.getsockname()[1]
        forwards.append(
            subprocess.Popen(
                ["kubectl", "port-forward", "-n", namespace, f"svc/{service}", f"{local}:{port}"],
                stdout=subprocess.DEVNULL,
            )
        )
        return f"http://127.0.0.1:{local}"

    yield url
    for proc in forwards:
        proc.terminate()
