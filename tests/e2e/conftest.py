"""Fixtures for the e2e tier: namespaces, API clients and reachable Service URLs.

On this project's machines the cluster is hack/cluster (``make test`` starts
it and loads the images). With ``CLUSTER=kind`` the same tests run on a kind
cluster made by pytest-kind, for machines with Docker that can run privileged
containers and reach a registry.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest
from kubernetes import client

from tests.conftest import on_kind
from tests.kube_helpers import api_client, create_namespace, delete_namespace, eventually


@pytest.fixture(scope="session")
def k8s(kubeconfig: str) -> client.ApiClient:
    return api_client(kubeconfig)


@pytest.fixture
def namespace(k8s: client.ApiClient) -> Iterator[str]:
    name = create_namespace(k8s, "e2e")
    yield name
    delete_namespace(k8s, name)


@pytest.fixture
def service_url(kubeconfig: str) -> Iterator[object]:
    """Return ``url(namespace, service, port)``: a base URL the test process can reach.

    On the local cluster the bridge and kube-proxy's rules make pod IPs and
    ClusterIPs reachable from the host; a headless Service (a Function's)
    resolves to a ready address from its EndpointSlice, as the gateway's
    routing will. On kind a ``kubectl port-forward`` stands in.
    """
    forwards: list[subprocess.Popen[bytes]] = []

    def url(namespace: str, service: str, port: int = 80) -> str:
        api = api_client(kubeconfig)
        svc = client.CoreV1Api(api).read_namespaced_service(service, namespace)
        headless = svc.spec.cluster_ip == "None"
        if headless:
            port = svc.spec.ports[0].port
        if not on_kind():
            host = ready_endpoint(api, namespace, service) if headless else svc.spec.cluster_ip
            return f"http://{host}:{port}"
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


def ready_endpoint(api: client.ApiClient, namespace: str, service: str) -> str:
    """A ready pod address from the Service's EndpointSlices (bounded wait)."""

    def address() -> str | None:
        slices = client.DiscoveryV1Api(api).list_namespaced_endpoint_slice(
            namespace, label_selector=f"kubernetes.io/service-name={service}"
        )
        for sl in slices.items:
            for ep in sl.endpoints or []:
                if ep.conditions and ep.conditions.ready and ep.addresses:
                    return str(ep.addresses[0])
        return None

    return eventually(address, timeout=60, what=f"a ready endpoint of {namespace}/{service}")
