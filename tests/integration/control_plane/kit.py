"""Helpers for the control plane's integration tests: a thin sync client,
body builders, and the operator run in-process. Polling and CRD installs
are the shared ones in ``tests.kube_helpers``."""

from __future__ import annotations

from typing import Any

from kopf.testing import KopfRunner
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from ember_operator.api.v1alpha1 import GROUP, VERSION


def run_operator(namespace: str) -> KopfRunner:
    """The operator in this process (kopf's runner thread), watching one namespace."""
    return KopfRunner(
        ["run", "--standalone", "--namespace", namespace, "-m", "ember_operator.handlers"],
        timeout=60,
    )


class Cluster:
    """Thin sync helpers over the official client, for tests only."""

    def __init__(self) -> None:
        self.api = client.ApiClient()
        self.core = client.CoreV1Api(self.api)
        self.apps = client.AppsV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)
        self.ext = client.ApiextensionsV1Api(self.api)

    def create(self, plural: str, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, plural, body
        )
        return result

    def get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] = self.custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, plural, name
            )
        except ApiException as e:
            if e.status == 404:
                return None
            raise
        return result

    def patch(self, plural: str, namespace: str, name: str, body: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, plural, name, body)

    def delete(self, plural: str, namespace: str, name: str) -> None:
        self.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)

    def deployment(self, namespace: str, name: str) -> Any:
        try:
            return self.apps.read_namespaced_deployment(name, namespace)
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    def condition(self, obj: dict[str, Any] | None, type_: str) -> dict[str, Any] | None:
        for c in ((obj or {}).get("status") or {}).get("conditions") or []:
            if c["type"] == type_:
                return dict(c)
        return None


def function(
    name: str,
    *,
    source: str | None = "def handle(event, context):\n    return event\n",
    **spec: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Function",
        "metadata": {"name": name},
        "spec": {"handler": "main:handle", **spec},
    }
    if source is not None and "image" not in spec:
        body["spec"]["source"] = source
    return body


def trigger(name: str, function: str = "hello", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Trigger",
        "metadata": {"name": name},
        "spec": {"function": function, **spec},
    }
