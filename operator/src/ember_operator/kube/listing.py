"""An informer that says when its first list is done, for the processes that
must not serve before they know what there is (the gateway's routes, the
dispatcher's sources); and the namespace scope they watch, from the
operator's namespace syntax.

The shared ``informer.Informer`` knows nothing of readiness: each watch of a
``SyncedInformer`` reports when its first list is done, and ``synced`` is
true once all of them have listed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Mapping
from typing import Any

from ember_operator.kube.client import Kube
from ember_operator.kube.informer import Handler, Informer, Watch
from ember_operator.kube.resources import RESOURCES

NamespaceScope = tuple[Collection[str] | None, Callable[[str], bool] | None]


def namespace_scope(
    patterns: tuple[str, ...], matches: Callable[[str, str], bool]
) -> NamespaceScope:
    """``(namespaces, accepts_namespace)`` for an informer: plain names are
    watched one by one; any pattern (``!``, globs, lists) means a watch on
    all namespaces filtered by ``matches``; none means all namespaces."""
    if patterns and not any(ch in ns for ns in patterns for ch in "!*?,"):
        return patterns, None
    if patterns:
        return None, lambda ns: any(matches(ns, p) for p in patterns)
    return None, None


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


Apply = Callable[[str, str, dict[str, Any]], None]  # (kind, event type, object)


class Watches:
    """One ``SyncedInformer`` per kind, in one namespace scope, each event
    handed to every ``apply`` in turn; ``synced`` once all have listed."""

    def __init__(
        self,
        kube: Kube,
        kinds: tuple[str, ...],
        appliers: tuple[Apply, ...],
        scope: NamespaceScope,
        selectors: Mapping[str, str] | None = None,
    ) -> None:
        plain, accepts = scope
        self.informers = [
            SyncedInformer(
                kube,
                RESOURCES[kind],
                self._handler(appliers, kind),
                namespaces=plain,
                accepts_namespace=accepts,
                label_selector=(selectors or {}).get(kind),
            )
            for kind in kinds
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
        return all(i.synced for i in self.informers)

    async def stop(self) -> None:
        await asyncio.gather(*(i.stop() for i in self.informers))
