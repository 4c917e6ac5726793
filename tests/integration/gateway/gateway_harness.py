"""Objects as the cluster watch delivers them, pointing at loopback."""

from __future__ import annotations

from typing import Any


def function(ns: str, name: str, concurrency: int = 2, timeout: int = 5) -> dict[str, Any]:
    return {
        "kind": "Function",
        "metadata": {"namespace": ns, "name": name},
        "spec": {"concurrency": concurrency, "timeoutSeconds": timeout},
    }


def endpoint_slice(
    ns: str, service: str, port: int, *, ready: bool = True, name: str = ""
) -> dict[str, Any]:
    return {
        "kind": "EndpointSlice",
        "metadata": {
            "namespace": ns,
            "name": name or f"{service}-{port}",
            "labels": {"kubernetes.io/service-name": service},
        },
        "ports": [{"name": "http", "port": port}],
        "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": ready}}],
    }


def trigger(
    ns: str, name: str, fn: str, path: str, methods: list[str], created: str
) -> dict[str, Any]:
    return {
        "kind": "Trigger",
        "metadata": {"namespace": ns, "name": name, "creationTimestamp": created},
        "spec": {"function": fn, "http": {"path": path, "methods": methods}},
    }
