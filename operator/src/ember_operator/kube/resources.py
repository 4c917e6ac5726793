"""Where each kind of object lives in the API: its URL paths.

A table rather than the client library's per-kind methods, so one code path
(``Kube.request``, the informer) serves every kind, and a new component that
needs one more kind (the gateway's EndpointSlices) adds a line here.
"""

from __future__ import annotations

from dataclasses import dataclass

from ember_operator.api.v1alpha1 import GROUP, VERSION


@dataclass(frozen=True)
class Resource:
    """A namespaced resource type, as its URL paths need it."""

    prefix: str  # "/api/v1", "/apis/apps/v1", ...
    plural: str

    def path(self, namespace: str | None, name: str | None = None, sub: str | None = None) -> str:
        """An object's or a collection's path; ``namespace=None`` (no name) is
        the collection across every namespace, for lists and watches."""
        p = f"{self.prefix}/namespaces/{namespace}/{self.plural}"
        if not namespace:
            p = f"{self.prefix}/{self.plural}"
        if name is not None:
            p += f"/{name}"
        if sub is not None:
            p += f"/{sub}"
        return p


RESOURCES: dict[str, Resource] = {
    "ConfigMap": Resource("/api/v1", "configmaps"),
    "Secret": Resource("/api/v1", "secrets"),
    "Service": Resource("/api/v1", "services"),
    "Pod": Resource("/api/v1", "pods"),
    "Deployment": Resource("/apis/apps/v1", "deployments"),
    "EndpointSlice": Resource("/apis/discovery.k8s.io/v1", "endpointslices"),
    "Function": Resource(f"/apis/{GROUP}/{VERSION}", "functions"),
    "Trigger": Resource(f"/apis/{GROUP}/{VERSION}", "triggers"),
}


def path(kind: str, namespace: str | None, name: str | None = None, sub: str | None = None) -> str:
    """``RESOURCES[kind].path(...)``: the path of one object or collection."""
    return RESOURCES[kind].path(namespace, name, sub)
