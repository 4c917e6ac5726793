"""What the autoscaler knows of the cluster, and the one write it makes.

It needs each Function's ``spec.scale`` and its Deployment's replica
counts. Deployments come from the operator's own Deployment informer
(``tee`` puts this table in front of the operator's handler, so the same
watch feeds both: no second watch on every Function's Deployment).
Functions come from an informer of the autoscaler's own, which keeps only
the scale spec and the last autoscaler status of each (the operator's kopf
handlers keep no spec it could read, and reading Functions through kopf
would give each one more handler run per status write).

The write is ``PATCH .../deployments/<name>/scale`` and nothing else
(whoever owns a field writes it: replicas are the autoscaler's), made only
when the desired count differs from the Deployment's.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import ValidationError

from ember_operator.api.v1alpha1 import Scale
from ember_operator.autoscaler.decide import Bounds
from ember_operator.kube.objects import Key, controlled_by, object_key

log = logging.getLogger("ember_operator.autoscaler")

Handler = Callable[[str, dict[str, Any]], Awaitable[None]]


class ScaleClient(Protocol):
    """The part of ``kube.client.Kube`` the autoscaler uses."""

    async def scale(self, kind: str, namespace: str, name: str, replicas: int) -> bool: ...

    async def patch_status(
        self, kind: str, namespace: str, name: str, status: Mapping[str, Any]
    ) -> bool: ...


def bounds_of(scale: Scale) -> Bounds:
    return Bounds(scale.min, scale.max, scale.target, float(scale.idle_seconds))


@dataclass
class FunctionEntry:
    bounds: Bounds
    status: dict[str, Any] = field(default_factory=dict)  # status.autoscaler as stored


@dataclass
class DeploymentEntry:
    name: str
    replicas: int
    ready: int


class Functions:
    """(namespace, name) -> scale bounds and last autoscaler status."""

    def __init__(self, watches: Callable[[str], bool] | None = None) -> None:
        self.entries: dict[Key, FunctionEntry] = {}
        self.watches = watches

    async def event(self, type: str, body: dict[str, Any]) -> None:
        key = object_key(body)
        if type == "DELETED" or (self.watches is not None and not self.watches(key[0])):
            self.entries.pop(key, None)
            return
        try:
            scale = Scale.model_validate((body.get("spec") or {}).get("scale") or {})
        except ValidationError as e:  # the CRD refuses this; keep the last good bounds
            log.warning("function %s/%s: bad spec.scale: %s", *key, e)
            return
        stored = (body.get("status") or {}).get("autoscaler") or {}
        entry = self.entries.get(key)
        if entry is None:
            self.entries[key] = FunctionEntry(bounds_of(scale), dict(stored))
        else:
            entry.bounds = bounds_of(scale)


class Deployments:
    """Function key -> its Deployment's name and replica counts."""

    def __init__(self) -> None:
        self.entries: dict[Key, DeploymentEntry] = {}

    def observe(self, type: str, body: Mapping[str, Any]) -> None:
        owned = controlled_by(body, "Function")
        if owned is None:
            return
        key = owned[0]
        if type == "DELETED":
            self.entries.pop(key, None)
            return
        spec, st = body.get("spec") or {}, body.get("status") or {}
        self.entries[key] = DeploymentEntry(
            name=str(body["metadata"]["name"]),
            replicas=int(spec.get("replicas", 1)),
            ready=int(st.get("readyReplicas") or 0),
        )

    async def event(self, type: str, body: dict[str, Any]) -> None:
        self.observe(type, body)

    def tee(self, handler: Handler) -> Handler:
        """``handler`` with this table fed first (for the operator's informer)."""

        async def both(type: str, body: dict[str, Any]) -> None:
            self.observe(type, body)
            await handler(type, body)

        return both


async def write_scale(kube: ScaleClient, key: Key, deployment: DeploymentEntry, want: int) -> bool:
    """Set the Deployment's replicas to ``want`` if they differ; True when a
    write was made. The table is updated at once, so the next tick does not
    write again before the watch brings the change back."""
    if want == deployment.replicas:
        return False
    if not await kube.scale("Deployment", key[0], deployment.name, want):
        return False  # gone: its DELETED event will drop it
    log.info("function %s/%s: replicas %d -> %d", *key, deployment.replicas, want)
    deployment.replicas = want
    return True
