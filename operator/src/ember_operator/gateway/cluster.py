"""The gateway's watches on the cluster: Functions, Triggers and the
EndpointSlices of Function Services, through the shared informer.

The informer knows nothing of readiness; the gateway must not take traffic
before it knows its routes, so each watch here reports when its first list
is done, and ``synced`` is true once all of them have listed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection
from typing import Any

from ember_operator.config import namespace_matches
from ember_operator.gateway.config import GatewaySettings
from ember_operator.gateway.feed import Feed
from ember_operator.kube.client import Kube
from ember_operator.kube.informer import Handler, Informer, Watch
from ember_operator.kube.resources import RESOURCES
from ember_operator.render.labels import FUNCTION_LABEL

# Function Services carry the Function label, and their EndpointSlices copy
# the Service's labels: one selector finds exactly the slices that matter.
SLICE_SELECTOR = FUNCTION_LABEL


class _ListingWatch(Watch):
    async def relist(self) -> str:
        version = await super().relist()
        informer = self.informer
        if isinstance(informer, SyncedInformer):
            informer.listed(self.path)
        return version


class SyncedInformer(Informer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.unlisted: set[str] = set()

    def start(self) -> None:
        namespaces = self.namespaces if self.namespaces is not None else (None,)
        for namespace in namespaces:
            p = self.resource.path(namespace)
            self.unlisted.add(p)
            self._spawn(_ListingWatch(self, p).run())

    def listed(self, path: str) -> None:
        self.unlisted.discard(path)

    @property
    def synced(self) -> bool:
        return not self.unlisted


class ClusterFeed:
    def __init__(self, kube: Kube, feed: Feed, settings: GatewaySettings) -> None:
        plain: Collection[str] | None = None
        accepts: Callable[[str], bool] | None = None
        patterns = settings.namespaces
        if patterns and not any(ch in ns for ns in patterns for ch in "!*?,"):
            plain = patterns
        elif patterns:
            accepts = lambda ns: any(namespace_matches(ns, p) for p in patterns)  # noqa: E731
        self.informers = [
            SyncedInformer(
                kube,
                RESOURCES[kind],
                self._handler(feed, kind),
                namespaces=plain,
                accepts_namespace=accepts,
                label_selector=SLICE_SELECTOR if kind == "EndpointSlice" else None,
            )
            for kind in ("Function", "Trigger", "EndpointSlice")
        ]

    @staticmethod
    def _handler(feed: Feed, kind: str) -> Handler:
        async def handle(event: str, obj: dict[str, Any]) -> None:
            feed.apply(kind, event, obj)

        return handle

    def start(self) -> None:
        for informer in self.informers:
            informer.start()

    @property
    def synced(self) -> bool:
        return all(i.synced for i in self.informers)

    async def stop(self) -> None:
        await asyncio.gather(*(i.stop() for i in self.informers))
