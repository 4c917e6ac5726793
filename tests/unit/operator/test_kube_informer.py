"""The informer's own logic: which events it takes, coalescing per object,
retries, and what a re-list infers. The API server is a fake here (pure
logic); the watch against a real one is covered by the control plane's
integration tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

import kopf
import pytest

from ember_operator.config import Config
from ember_operator.kube import informer as informer_module
from ember_operator.kube.client import ApiError
from ember_operator.kube.informer import Informer, Watch
from ember_operator.kube.resources import RESOURCES

pytestmark = pytest.mark.unit


def deployment(
    ns: str, name: str, owner: str | None = None, kind: str = "Function"
) -> dict[str, Any]:
    refs = (
        [{"kind": kind, "name": owner, "uid": f"uid-{owner}", "controller": True}] if owner else []
    )
    return {"metadata": {"namespace": ns, "name": name, "ownerReferences": refs}, "n": 0}


class Recorder:
    def __init__(
        self, fail_first: int = 0, pause: asyncio.Event | None = None, delay: float = 0.01
    ) -> None:
        self.calls: list[tuple[str, str, int]] = []
        self.fail_first = fail_first
        self.pause = pause
        self.delay = delay

    async def __call__(self, kind: str, body: Mapping[str, Any]) -> None:
        if self.pause is not None:
            await self.pause.wait()
        self.calls.append((kind, body["metadata"]["name"], body.get("n", 0)))
        if self.fail_first:
            self.fail_first -= 1
            raise kopf.TemporaryError("try again", delay=self.delay)


def informer(handler: Recorder, namespaces: tuple[str, ...] = (), kube: Any = None) -> Informer:
    """An informer over Deployments, set up from a Config as the operator does."""
    config = Config(namespaces=namespaces)
    return Informer(
        kube,
        RESOURCES["Deployment"],
        handler,
        namespaces=config.plain_namespaces,
        accepts_namespace=None if config.plain_namespaces is not None else config.watches,
        label_selector="ember.dev/function",
    )


async def settle(f: Informer) -> None:
    for _ in range(100):
        await asyncio.sleep(0.005)
        if not f._busy and not f._latest:
            return


async def test_only_objects_in_watched_namespaces_are_handled() -> None:
    rec = Recorder()
    f = informer(rec, namespaces=("!bench-*",))
    f.dispatch("ADDED", deployment("team", "a", owner="a"))
    f.dispatch("ADDED", deployment("team", "b"))  # no owner: the handler decides
    f.dispatch("ADDED", deployment("bench-1", "d", owner="d"))  # not watched
    await settle(f)
    assert sorted(rec.calls) == [("ADDED", "a", 0), ("ADDED", "b", 0)]


async def test_one_watch_per_plain_namespace_and_one_for_a_pattern() -> None:
    class Paths:
        def __init__(self) -> None:
            self.paths: list[str] = []

        async def request(self, method: str, url: str, query: Mapping[str, str]) -> Any:
            self.paths.append(url)
            await asyncio.Event().wait()

    for namespaces, want in (
        (
            ("a", "b"),
            ["/apis/apps/v1/namespaces/a/deployments", "/apis/apps/v1/namespaces/b/deployments"],
        ),
        (("!bench-*",), ["/apis/apps/v1/deployments"]),
    ):
        kube = Paths()
        f = informer(Recorder(), namespaces=namespaces, kube=kube)
        f.start()
        await asyncio.sleep(0.01)
        await f.stop()
        assert sorted(kube.paths) == want


async def test_events_of_one_function_are_coalesced_to_the_newest() -> None:
    gate = asyncio.Event()
    rec = Recorder(pause=gate)
    f = informer(rec)
    for n in range(4):
        d = deployment("ns", "fn", owner="fn")
        d["n"] = n
        f.dispatch("MODIFIED", d)
        await asyncio.sleep(0)  # the first is taken at once; the rest wait
    gate.set()
    await settle(f)
    assert rec.calls == [("MODIFIED", "fn", 0), ("MODIFIED", "fn", 3)]


async def test_a_failed_event_is_tried_again_after_its_delay() -> None:
    rec = Recorder(fail_first=1)
    f = informer(rec)
    f.dispatch("MODIFIED", deployment("ns", "fn", owner="fn"))
    await asyncio.sleep(0.1)
    await settle(f)
    assert rec.calls == [("MODIFIED", "fn", 0), ("MODIFIED", "fn", 0)]


class PagedKube:
    def __init__(self, pages: list[list[dict[str, Any]]]) -> None:
        self.pages = pages
        self.queries: list[dict[str, str]] = []

    async def request(self, method: str, url: str, query: Mapping[str, str]) -> dict[str, Any]:
        self.queries.append(dict(query))
        i = int(query.get("continue", "0"))
        more = {"continue": str(i + 1)} if i + 1 < len(self.pages) else {}
        return {"items": self.pages[i], "metadata": {"resourceVersion": "42", **more}}


async def test_relist_reads_every_page_and_infers_deletions_missed_meanwhile() -> None:
    rec = Recorder()
    kube = PagedKube([[deployment("ns", "a", owner="a")], [deployment("ns", "b", owner="b")]])
    f = informer(rec, kube=kube)
    w = Watch(f, "/apis/apps/v1/deployments")
    w.remember(deployment("ns", "gone", owner="gone"))
    assert await w.relist() == "42"
    await settle(f)
    assert sorted(rec.calls) == [("DELETED", "gone", 0), ("MODIFIED", "a", 0), ("MODIFIED", "b", 0)]
    assert set(w.known) == {("ns", "a"), ("ns", "b")}
    assert [q.get("continue") for q in kube.queries] == [None, "1"]
    assert all(q["labelSelector"] == "ember.dev/function" for q in kube.queries)


async def test_a_permanent_error_is_not_tried_again() -> None:
    class Fails(Recorder):
        async def __call__(self, kind: str, body: Mapping[str, Any]) -> None:
            await super().__call__(kind, body)
            raise kopf.PermanentError("no")

    rec = Fails()
    f = informer(rec)
    f.dispatch("MODIFIED", deployment("ns", "fn", owner="fn"))
    await asyncio.sleep(0.05)
    await settle(f)
    assert rec.calls == [("MODIFIED", "fn", 0)]


async def test_a_failed_event_is_not_retried_once_a_newer_one_was_handled() -> None:
    rec = Recorder(fail_first=1, delay=0.3)
    f = informer(rec)
    f.dispatch("MODIFIED", deployment("ns", "fn", owner="fn"))
    await settle(f)
    newer = deployment("ns", "fn", owner="fn")
    newer["n"] = 1
    f.dispatch("MODIFIED", newer)  # handled before the retry of the first is due
    await settle(f)
    await asyncio.sleep(0.4)  # past the failed event's retry
    await settle(f)
    assert rec.calls == [("MODIFIED", "fn", 0), ("MODIFIED", "fn", 1)]


async def test_a_failed_event_is_not_retried_when_a_newer_one_came_while_it_ran() -> None:
    gate = asyncio.Event()
    rec = Recorder(fail_first=1, pause=gate, delay=0.05)
    f = informer(rec)
    f.dispatch("MODIFIED", deployment("ns", "fn", owner="fn"))
    await asyncio.sleep(0)  # the first is being handled (and will fail)
    newer = deployment("ns", "fn", owner="fn")
    newer["n"] = 1
    f.dispatch("MODIFIED", newer)
    gate.set()
    await settle(f)
    await asyncio.sleep(0.15)  # past the failed event's retry delay
    await settle(f)
    assert rec.calls == [("MODIFIED", "fn", 0), ("MODIFIED", "fn", 1)]


class ScriptedWatchKube:
    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.events = events
        self.queries: list[dict[str, str]] = []

    async def watch(
        self, url: str, query: Mapping[str, str], timeout_seconds: int
    ) -> AsyncIterator[dict[str, Any]]:
        self.queries.append(dict(query))
        for event in self.events:
            yield event


def versioned(d: dict[str, Any], version: str) -> dict[str, Any]:
    d["metadata"]["resourceVersion"] = version
    return d


async def test_watch_follows_events_and_returns_the_last_version() -> None:
    rec = Recorder()
    kube = ScriptedWatchKube(
        [
            {"type": "ADDED", "object": versioned(deployment("ns", "a", owner="a"), "6")},
            {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "7"}}},
            {"type": "ADDED", "object": versioned(deployment("ns", "b", owner="b"), "8")},
            {"type": "DELETED", "object": versioned(deployment("ns", "a", owner="a"), "9")},
            {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "10"}}},
        ]
    )
    f = informer(rec, kube=kube)
    w = Watch(f, "/apis/apps/v1/deployments")
    assert await w.watch("5") == "10"
    await settle(f)
    assert kube.queries[0]["resourceVersion"] == "5"
    assert kube.queries[0]["allowWatchBookmarks"] == "true"
    assert set(w.known) == {("ns", "b")}
    # a's two events came before its handler ran: only the newest is handled.
    assert sorted(rec.calls) == [("ADDED", "b", 0), ("DELETED", "a", 0)]


async def test_watch_says_list_again_on_410_and_raises_other_errors() -> None:
    gone = ScriptedWatchKube([{"type": "ERROR", "object": {"code": 410, "message": "too old"}}])
    assert await Watch(informer(Recorder(), kube=gone), "/p").watch("5") is None
    broken = ScriptedWatchKube([{"type": "ERROR", "object": {"code": 500, "message": "boom"}}])
    with pytest.raises(ApiError) as err:
        await Watch(informer(Recorder(), kube=broken), "/p").watch("5")
    assert err.value.status == 500


async def test_a_watch_that_fails_at_once_backs_off_between_lists(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(informer_module, "BACKOFF_FIRST", 0.01)
    monkeypatch.setattr(informer_module, "BACKOFF_MAX", 0.04)

    class Flapping(PagedKube):
        async def watch(
            self, url: str, query: Mapping[str, str], timeout_seconds: int
        ) -> AsyncIterator[dict[str, Any]]:
            yield {"type": "ERROR", "object": {"code": 410}}

    kube = Flapping([[]])
    task = asyncio.create_task(Watch(informer(Recorder(), kube=kube), "/p").run())
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # 0.01 + 0.02 + 0.04 + 0.04 ... : about 8 lists in 0.3 s, not thousands.
    assert 3 <= len(kube.queries) <= 20, len(kube.queries)
