"""Small, dependable helpers for tests that talk to a real cluster, shared
by the integration and e2e tiers.

They poll with a deadline instead of sleeping, so a slow 2-core machine makes
a test slower, never flaky; and every failure says what it was waiting for.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from tests.conftest import REPO

T = TypeVar("T")


def api_client(kubeconfig: str) -> client.ApiClient:
    return config.new_client_from_config(config_file=kubeconfig)


def eventually(
    fn: Callable[[], T | None], *, what: str, timeout: float = 30.0, interval: float = 0.2
) -> T:
    """Call ``fn`` until it returns something truthy; fail with ``what``, the
    last value and the last error after ``timeout``. An exception counts as
    "not yet" (an object not created yet is a 404 on the way to success)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            last = fn()
            if last:
                return last
        except Exception as exc:
            last_exc = exc
        time.sleep(interval)
    raise AssertionError(
        f"timed out after {timeout}s waiting for {what}: last={last!r}"
        + (f" (last error: {last_exc!r})" if last_exc else "")
    )


def install_crds(api: client.ApiClient) -> None:
    """Apply the generated CRDs (create or replace) and wait until each is
    Established and its schema is served."""
    ext = client.ApiextensionsV1Api(api)
    for path in sorted((REPO / "crds").glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        name = crd["metadata"]["name"]
        try:
            live = ext.read_custom_resource_definition(name)
            crd["metadata"]["resourceVersion"] = live.metadata.resource_version
            ext.replace_custom_resource_definition(name, crd)
        except ApiException as e:
            if e.status != 404:
                raise
            ext.create_custom_resource_definition(crd)

        def established(name: str = name) -> bool:
            live = ext.read_custom_resource_definition(name)
            return any(
                c.type == "Established" and c.status == "True"
                for c in (live.status.conditions or [])
            )

        eventually(established, timeout=30, what=f"CRD {name} established")
    # Schema changes take a moment to reach every API server handler.
    time.sleep(1)


def unique_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def create_namespace(api: client.ApiClient, prefix: str) -> str:
    name = unique_name(prefix)
    client.CoreV1Api(api).create_namespace(
        client.V1Namespace(
            metadata=client.V1ObjectMeta(name=name, labels={"ember.dev/test": "true"})
        )
    )
    return name


def delete_namespace(api: client.ApiClient, name: str) -> None:
    try:
        client.CoreV1Api(api).delete_namespace(name)
    except client.ApiException as exc:
        if exc.status != 404:
            raise


def deployment_ready(api: client.ApiClient, namespace: str, name: str) -> Any:
    dep = client.AppsV1Api(api).read_namespaced_deployment(name, namespace)
    want = dep.spec.replicas or 0
    return want > 0 and (dep.status.ready_replicas or 0) >= want and dep
