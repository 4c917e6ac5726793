"""Small, dependable helpers for tests that talk to a real cluster.

They poll with a deadline instead of sleeping, so a slow 2-core machine makes
a test slower, never flaky; and every failure says what it was waiting for.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from kubernetes import client, config

T = TypeVar("T")


def api_client(kubeconfig: str) -> client.ApiClient:
    return config.new_client_from_config(config_file=kubeconfig)


def eventually(
    fn: Callable[[], T | None], *, timeout: float, what: str, interval: float = 0.2
) -> T:
    """Call ``fn`` until it returns something truthy; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = fn()
            if result:
                return result
        except Exception as exc:
            last_exc = exc
        time.sleep(interval)
    raise AssertionError(
        f"timed out after {timeout}s waiting for {what}"
        + (f" (last error: {last_exc!r})" if last_exc else "")
    )


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
