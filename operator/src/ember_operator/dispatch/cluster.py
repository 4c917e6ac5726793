"""The dispatcher's watches: Functions and Triggers, through the shared
informer, into the ``SourceSet`` (and the cron scheduler).

Readiness waits for the first list of both: a dispatcher that has not
seen its sources yet reads nothing, and should say so.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection
from typing import Any

from ember_operator.config import namespace_matches
from ember_operator.dispatch.sources import SourceSet
from ember_operator.kube.client import Kube
from ember_operator.kube.informer import Handler, Informer, Watch
from ember_operator.kube.resources import RESOURCES


class _ListingWatch(Watch):
    async def relist(self) -> str:
        version = await super().relist()
        informer = self.informer
        if isinstance(informer, _Listed):
            informer.unlisted.discard(self.path)
        return version


class _Listed(Informer):
    """An informer that knows when each of its watches has listed once."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.unlisted: set[str] = set()

    def start(self) -> None:
        for namespace in self.namespaces if self.namespaces is not None else (None,):
            path = self.resource.path(namespace)
            self.unlisted.add(path)
            self._spawn(_ListingWatch(self, path).run())


Apply = Callable[[str, str, dict[str, Any]], None]  # (kind, event type, object)


class ClusterSources:
    """Functions and Triggers into ``sources`` and into every ``also``
    (the cron scheduler reads the same events)."""

    def __init__(
        self,
        kube: Kube,
        sources: SourceSet,
        namespaces: tuple[str, ...],
        also: tuple[Apply, ...] = (),
    ) -> None:
        plain: Collection[str] | None = None
        accepts: Callable[[str], bool] | None = None
        if namespaces and not any(ch in ns for ns in namespaces for ch in "!*?,"):
            plain = namespaces
        elif namespaces:
            accepts = lambda ns: any(namespace_matches(ns, p) for p in namespaces)  # noqa: E731
        self.informers = [
            _Listed(
                kube,
                RESOURCES[kind],
                self._handler((sources.apply, *also), kind),
                namespaces=plain,
                accepts_namespace=accepts,
            )
            for kind in ("Function", "Trigger")
        ]

    @staticmethod
    def _handler(appliers: tuple[Apply, ...], kind: str) -> Handler:
        async def handle(event: str, obj: dict[str, Any]) -> None:
            for apply in appliers:
                apply(kind, event, obj)

        return handle

    def start(self) -> None:
        for informer in self.informers:
            informer.start()

    @property
    def synced(self) -> bool:
        return not any(i.unlisted for i in self.informers)

    async def stop(self) -> None:
        await asyncio.gather(*(i.stop() for i in self.informers))
