"""Where the gateway replicas are: the admin address of each one.

The gateway Service carries ``app.kubernetes.io/component: gateway``; its
EndpointSlices (``kubernetes.io/service-name: <service>``) list the
replicas' IPs and the port named ``admin``. Both are followed with the
shared informer rather than listed every tick: a list of Services and one
of EndpointSlices every 2 s would be a steady 1 request/s on the API server
for something that changes when a gateway pod comes or goes, and a tick
would wait on the API server before it could read any load. The informer
costs two watches in one namespace, and a tick reads memory.

Endpoints that serve are read (``serving``, or ``ready`` where the
API server says nothing of serving): a terminating gateway still holds
requests in flight, and those count as load until it is gone.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from ember_operator.kube.client import Kube
from ember_operator.kube.informer import Informer
from ember_operator.kube.objects import Key, object_key
from ember_operator.kube.resources import RESOURCES

COMPONENT_LABEL = "app.kubernetes.io/component"
GATEWAY_COMPONENT = "gateway"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
ADMIN_PORT_NAME = "admin"
DEFAULT_ADMIN_PORT = 9090


class GatewaySource(Protocol):
    def addresses(self) -> list[str]: ...


class StaticGateways:
    """A fixed list of ``host:port`` (tests, an operator run on a laptop)."""

    def __init__(self, addresses: list[str]) -> None:
        self._addresses = list(addresses)

    def addresses(self) -> list[str]:
        return list(self._addresses)

    async def stop(self) -> None:
        return None


def host_port(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def slice_addresses(endpoint_slice: Mapping[str, Any], default_port: int) -> list[str]:
    """The admin addresses of an EndpointSlice's serving endpoints."""
    port = default_port
    for p in endpoint_slice.get("ports") or []:
        if p.get("name") == ADMIN_PORT_NAME and p.get("port"):
            port = int(p["port"])
    out: list[str] = []
    for endpoint in endpoint_slice.get("endpoints") or []:
        cond = endpoint.get("conditions") or {}
        if cond.get("serving", cond.get("ready", True)) is False:
            continue
        out.extend(host_port(str(ip), port) for ip in endpoint.get("addresses") or [])
    return out


class EndpointSliceGateways:
    """The gateway Services and their EndpointSlices in one namespace."""

    def __init__(self, kube: Kube, namespace: str, default_port: int = DEFAULT_ADMIN_PORT):
        self.default_port = default_port
        self.services: set[str] = set()
        self.slices: dict[Key, tuple[str, list[str]]] = {}  # -> (service, addresses)
        self._informers = [
            Informer(
                kube,
                RESOURCES["Service"],
                self.service_event,
                namespaces=(namespace,),
                label_selector=f"{COMPONENT_LABEL}={GATEWAY_COMPONENT}",
            ),
            Informer(
                kube,
                RESOURCES["EndpointSlice"],
                self.slice_event,
                namespaces=(namespace,),
                label_selector=SERVICE_NAME_LABEL,
            ),
        ]

    def start(self) -> None:
        for informer in self._informers:
            informer.start()

    async def stop(self) -> None:
        for informer in self._informers:
            await informer.stop()

    async def service_event(self, type: str, service: dict[str, Any]) -> None:
        name = object_key(service)[1]
        if type == "DELETED":
            self.services.discard(name)
        else:
            self.services.add(name)

    async def slice_event(self, type: str, endpoint_slice: dict[str, Any]) -> None:
        key = object_key(endpoint_slice)
        if type == "DELETED":
            self.slices.pop(key, None)
            return
        labels = (endpoint_slice.get("metadata") or {}).get("labels") or {}
        service = str(labels.get(SERVICE_NAME_LABEL) or "")
        self.slices[key] = (service, slice_addresses(endpoint_slice, self.default_port))

    def addresses(self) -> list[str]:
        found = {
            address
            for service, addresses in self.slices.values()
            if service in self.services
            for address in addresses
        }
        return sorted(found)
