"""A list+watch cache (an informer) over one kind of object.

The operator follows Function Deployments and their pods with it, and the
gateway (Functions, Triggers, EndpointSlices) and the autoscaler
(Deployments) are to reuse it. It knows a resource, the namespaces, an
optional label selector and a handler, nothing of what the events mean.

Why not kopf: kopf gives every object it watches a worker, a memory, a diff
and a handler pipeline. A Function needs all of that; its Deployment does
not: the status only reads a few of the Deployment's numbers on each change.
Handled through kopf (``@kopf.on.event``), Deployments cost the
``operator_reconcile`` benchmark about a fifth of the operator's CPU and
22 MB of RSS per 1,000 Functions. So:

* list (with the label selector) for a resourceVersion, then watch from it
  with bookmarks;
* on 410 Gone, or any error after a short backoff, list again, and treat
  every object seen before but missing from the new list as deleted (the
  deletion happened while no watch was open);
* per object, only the newest event waits to be handled, and one task
  handles an object's events in order; a failed one is tried again after
  the delay its error asks for, unless a newer event came meanwhile.

Nothing is kept per object but its names, labels and owner references (what
a synthesized deletion needs).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any

import kopf

from ember_operator.kube.client import ApiError, Kube
from ember_operator.kube.objects import Key, object_key
from ember_operator.kube.resources import Resource

log = logging.getLogger("ember_operator.informer")

Handler = Callable[[str, dict[str, Any]], Awaitable[None]]  # (event type, object)
Event = tuple[str, dict[str, Any]]

WATCH_SECONDS = 300
LIST_PAGE = 500
BACKOFF_FIRST, BACKOFF_MAX = 0.5, 30.0
STEADY_SECONDS = 5.0  # a watch that lasted this long resets the backoff
RETRY_DELAY = 5.0  # for a failure that names no delay of its own


class Informer:
    """Lists and watches ``resource`` and hands each change to ``handler``.

    ``namespaces`` are watched one by one (None: one watch across all of
    them); ``accepts_namespace`` filters what a cluster-wide watch sees
    (for namespace patterns no single watch can express)."""

    def __init__(
        self,
        kube: Kube,
        resource: Resource,
        handler: Handler,
        *,
        namespaces: Collection[str] | None = None,
        accepts_namespace: Callable[[str], bool] | None = None,
        label_selector: str | None = None,
    ) -> None:
        self.kube = kube
        self.resource = resource
        self.handler = handler
        self.namespaces = namespaces
        self.accepts_namespace = accepts_namespace
        self.label_selector = label_selector
        self._latest: dict[Key, Event] = {}
        self._busy: set[Key] = set()
        self._failed: dict[Key, Event] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopped = False

    # --- lifecycle ------------------------------------------------------

    def start(self) -> None:
        namespaces = self.namespaces if self.namespaces is not None else (None,)
        for namespace in namespaces:
            self._spawn(Watch(self, self.resource.path(namespace)).run())

    async def stop(self) -> None:
        self._stopped = True
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def _spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- events ---------------------------------------------------------

    def dispatch(self, kind: str, obj: dict[str, Any]) -> None:
        key = object_key(obj)
        if self.accepts_namespace is not None and not self.accepts_namespace(key[0]):
            return
        self._failed.pop(key, None)  # a newer event supersedes a failed one
        self._latest[key] = (kind, obj)
        if key not in self._busy:
            self._busy.add(key)
            self._spawn(self._drain(key))

    async def _drain(self, key: Key) -> None:
        try:
            while (event := self._latest.pop(key, None)) is not None:
                try:
                    await self.handler(*event)
                except kopf.PermanentError as e:
                    log.error("%s %s/%s: %s", self.resource.plural, *key, e)
                except (kopf.TemporaryError, ApiError) as e:
                    log.warning("%s %s/%s: %s", self.resource.plural, *key, e)
                    if key not in self._latest:  # else a newer event is next anyway
                        self._failed[key] = event
                        delay = getattr(e, "delay", None) or RETRY_DELAY
                        asyncio.get_running_loop().call_later(delay, self._retry, key, event)
                except Exception:
                    log.exception("%s %s/%s: unexpected error", self.resource.plural, *key)
        finally:
            self._busy.discard(key)

    def _retry(self, key: Key, event: Event) -> None:
        """Try a failed event again, unless a newer one came meanwhile (even
        one already handled) or the informer has stopped."""
        if self._failed.get(key) is event and not self._stopped:
            self.dispatch(*event)


class Watch:
    """One list+watch loop over one collection path."""

    def __init__(self, informer: Informer, path: str) -> None:
        self.informer = informer
        self.kube = informer.kube
        self.path = path
        # (namespace, name) -> the last body seen, trimmed to what a
        # synthesized deletion needs: its names, labels and owners.
        self.known: dict[Key, dict[str, Any]] = {}

    def _query(self, **extra: str) -> dict[str, str]:
        selector = self.informer.label_selector
        return {**({"labelSelector": selector} if selector else {}), **extra}

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        backoff = BACKOFF_FIRST
        version: str | None = None
        while True:
            started = loop.time()
            try:
                if version is None:
                    version = await self.relist()
                    started = loop.time()  # the watch's own life is what counts
                version = await self.watch(version)
            except asyncio.CancelledError:
                raise
            except ApiError as e:
                if e.status != 410:
                    log.warning("watching %s: HTTP %s: %s", self.path, e.status, e.message)
                version = None
            except Exception as e:  # a dropped connection, a timeout, a bad line
                log.warning("watching %s: %r; listing again", self.path, e)
                version = None
            # A watch that lasted is the normal cycle: go on at once. One that
            # ended (or failed, or was too old) straight away waits, longer
            # each time, so a flapping stream (or a list that is already too
            # old when it ends) cannot turn into back-to-back full lists.
            if loop.time() - started >= STEADY_SECONDS:
                backoff = BACKOFF_FIRST
            else:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)

    async def relist(self) -> str:
        """List in pages (one consistent snapshot); returns its version."""
        seen: set[Key] = set()
        query = self._query(limit=str(LIST_PAGE))
        while True:
            page = await self.kube.request("GET", self.path, query=query)
            for item in page.get("items") or []:
                seen.add(self.remember(item))
                self.informer.dispatch("MODIFIED", item)
            meta = page.get("metadata") or {}
            if not meta.get("continue"):
                break
            query["continue"] = str(meta["continue"])
        for gone in set(self.known) - seen:
            self.informer.dispatch("DELETED", self.known.pop(gone))
        return str(meta["resourceVersion"])

    async def watch(self, version: str) -> str | None:
        """Follow from ``version``; returns the version to go on from, or
        None when the API server says it is too old (list again)."""
        query = self._query(resourceVersion=version, allowWatchBookmarks="true")
        async with contextlib.aclosing(self.kube.watch(self.path, query, WATCH_SECONDS)) as events:
            async for event in events:
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        return None
                    raise ApiError(int(obj.get("code") or 0), str(obj.get("message")))
                version = str(obj["metadata"]["resourceVersion"])
                if kind == "BOOKMARK":
                    continue
                if kind == "DELETED":
                    meta = obj["metadata"]
                    self.known.pop((meta["namespace"], meta["name"]), None)
                else:
                    self.remember(obj)
                self.informer.dispatch(str(kind), obj)
        return version

    def remember(self, obj: Mapping[str, Any]) -> Key:
        meta = obj["metadata"]
        key = (str(meta.get("namespace") or ""), str(meta["name"]))
        self.known[key] = {
            "metadata": {
                "namespace": key[0],
                "name": key[1],
                "labels": meta.get("labels") or {},
                "ownerReferences": meta.get("ownerReferences") or [],
            }
        }
        return key
