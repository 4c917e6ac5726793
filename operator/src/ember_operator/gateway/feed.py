"""Functions, Triggers and EndpointSlices into the gateway's memory.

The same ``Feed.apply(kind, event type, object)`` is driven by the shared
informer in a cluster, by a JSON file (``EMBER_GATEWAY_FEED_FILE``, for
development and benchmarks), or by a test that points EndpointSlices at
runtime processes on loopback. Objects are read as plain dicts, leniently:
a field the gateway does not understand never stops routing.

EndpointSlices are matched to their Function by the
``kubernetes.io/service-name`` label (a Function's Service is named after
it, ``render.names``) and may arrive before the Function itself, so they
are kept by Service until it does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ember_operator.gateway.endpoints import Backend, EndpointState
from ember_operator.gateway.proxy import Proxy
from ember_operator.gateway.routes import trigger_route
from ember_operator.kube.objects import Key
from ember_operator.render.names import PORT_NAME, service_name
from ember_runtime import logs

SERVICE_NAME_LABEL = "kubernetes.io/service-name"


def slice_endpoints(obj: Mapping[str, Any]) -> list[EndpointState]:
    """The addresses of one EndpointSlice, with the port named ``http``."""
    ports = obj.get("ports") or []
    port = next((p.get("port") for p in ports if p.get("name") == PORT_NAME), None)
    if port is None and len(ports) == 1:
        port = ports[0].get("port")
    if port is None:
        return []
    out = []
    for ep in obj.get("endpoints") or []:
        addresses = ep.get("addresses") or []
        if not addresses:
            continue
        cond = ep.get("conditions") or {}
        # "nil ... should be interpreted as ready" (discovery.k8s.io/v1)
        ready = cond.get("ready") is not False
        terminating = cond.get("terminating") is True
        out.append(EndpointState((str(addresses[0]), int(port)), ready, terminating))
    return out


class Feed:
    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        # (namespace, Service) -> {slice name: endpoints}, Function or not.
        self.slices: dict[Key, dict[str, list[EndpointState]]] = {}

    def apply(self, kind: str, event: str, obj: Mapping[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        ns, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
        deleted = event == "DELETED" or bool(meta.get("deletionTimestamp"))
        if kind == "Function":
            self.function((ns, name), None if deleted else obj.get("spec") or {})
        elif kind == "Trigger":
            self.trigger((ns, name), None if event == "DELETED" else obj)
        elif kind == "EndpointSlice":
            service = str((meta.get("labels") or {}).get(SERVICE_NAME_LABEL) or "")
            if service:
                self.endpoint_slice((ns, service), name, None if event == "DELETED" else obj)

    # --- Functions ----------------------------------------------------------

    def function(self, key: Key, spec: Mapping[str, Any] | None) -> None:
        proxy = self.proxy
        backend = proxy.backends.get(key)
        if spec is None:
            proxy.table.remove_function(key)
            proxy.remove_backend(key)
            return
        concurrency = max(1, int(spec.get("concurrency") or 10))
        timeout = float(spec.get("timeoutSeconds") or 30)
        if backend is None:
            backend = proxy.backends[key] = Backend(
                key, concurrency, timeout, proxy.settings.queue_size
            )
            for slice_name, endpoints in self.slices.get(
                (key[0], service_name(key[1])), {}
            ).items():
                backend.set_slice(slice_name, endpoints)
            logs.emit("info", "function routed", function=backend.name)
        else:
            backend.concurrency, backend.timeout_seconds = concurrency, timeout
        proxy.table.set_function(key)
        proxy.release(backend)  # a raised concurrency makes room at once

    # --- Triggers -------------------------------------------------------------

    def trigger(self, key: Key, obj: Mapping[str, Any] | None) -> None:
        table = self.proxy.table
        spec = (obj or {}).get("spec") or {}
        http = spec.get("http")
        if obj is None or not isinstance(http, Mapping) or not http.get("path"):
            table.remove_trigger(key)
            return
        created = str(((obj.get("metadata") or {}).get("creationTimestamp")) or "")
        route = trigger_route(
            key[0],
            key[1],
            str(spec.get("function") or ""),
            str(http["path"]),
            list(http.get("methods") or []),
        )
        table.set_trigger(route, created)
        if key in table.conflicts:
            logs.emit(
                "warning", "trigger path conflict", trigger=f"{key[0]}/{key[1]}", path=route.path
            )

    # --- EndpointSlices -------------------------------------------------------

    def endpoint_slice(self, service: Key, name: str, obj: Mapping[str, Any] | None) -> None:
        slices = self.slices.setdefault(service, {})
        if obj is None:
            slices.pop(name, None)
            if not slices:
                del self.slices[service]
        else:
            slices[name] = slice_endpoints(obj)
        # A Function's Service has the Function's name (render.names.service_name).
        backend = self.proxy.backends.get(service)
        if backend is None:
            return
        if obj is None:
            backend.remove_slice(name)
        else:
            backend.set_slice(name, slices[name])
        self.proxy.release(backend)
