"""The Deployment follower's own logic: which events it takes, coalescing per
Function, retries, and what a re-list infers. The API server is a fake here
(pure logic); the watch against a real one is covered by the operator's
integration tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

import kopf
import pytest
from kopf._cogs.structs.references import match_namespace

from ember_operator import status as st
from ember_operator.config import Config, namespace_matches
from ember_operator.kube import ApiError
from ember_operator.reconcile.context import Context
from ember_operator.reconcile.follow import Follower, Watch
from ember_operator.reconcile.function import deployment_event, report

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "pattern",
    ["apps", "app*", "!bench-*", "!ember-it-*,!bench-*", "myapp-*, !*-pr-*, *pr-123", "a?c"],
)
@pytest.mark.parametrize(
    "name", ["apps", "app", "bench-1", "ember-it-x", "myapp-pr-123", "myapp-pr-4", "abc", "x"]
)
def test_namespace_patterns_match_as_kopf_matches_them(name: str, pattern: str) -> None:
    assert namespace_matches(name, pattern) == match_namespace(name, pattern)


def test_plain_namespaces_get_their_own_watch_and_patterns_one_filtered() -> None:
    assert Config(namespaces=("a", "b")).plain_namespaces == ("a", "b")
    assert Config().plain_namespaces is None
    patterned = Config(namespaces=("!bench-*",))
    assert patterned.plain_namespaces is None
    assert patterned.watches("team") and not patterned.watches("bench-7")


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

    async def __call__(self, ctx: Context, kind: str, body: Mapping[str, Any]) -> None:
        if self.pause is not None:
            await self.pause.wait()
        self.calls.append((kind, body["metadata"]["name"], body.get("n", 0)))
        if self.fail_first:
            self.fail_first -= 1
            raise kopf.TemporaryError("try again", delay=self.delay)


def follower(handler: Recorder, namespaces: tuple[str, ...] = ()) -> Follower:
    return Follower(Context(config=Config(namespaces=namespaces), kube=None), handler)  # type: ignore[arg-type]


async def settle(f: Follower) -> None:
    for _ in range(100):
        await asyncio.sleep(0.005)
        if not f._busy and not f._latest:
            return


async def test_only_function_deployments_in_watched_namespaces_are_handled() -> None:
    rec = Recorder()
    f = follower(rec, namespaces=("!bench-*",))
    f.dispatch("ADDED", deployment("team", "a", owner="a"))
    f.dispatch("ADDED", deployment("team", "b"))  # no owner
    f.dispatch("ADDED", deployment("team", "c", owner="c", kind="ReplicaSet"))
    f.dispatch("ADDED", deployment("bench-1", "d", owner="d"))  # not watched
    await settle(f)
    assert rec.calls == [("ADDED", "a", 0)]


async def test_events_of_one_function_are_coalesced_to_the_newest() -> None:
    gate = asyncio.Event()
    rec = Recorder(pause=gate)
    f = follower(rec)
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
    f = follower(rec)
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
    f = follower(rec)
    kube = PagedKube([[deployment("ns", "a", owner="a")], [deployment("ns", "b", owner="b")]])
    w = Watch(kube, "/apis/apps/v1/deployments", f)  # type: ignore[arg-type]
    w.remember(deployment("ns", "gone", owner="gone"))
    assert await w.relist() == "42"
    await settle(f)
    assert sorted(rec.calls) == [("DELETED", "gone", 0), ("MODIFIED", "a", 0), ("MODIFIED", "b", 0)]
    assert set(w.known) == {("ns", "a"), ("ns", "b")}
    assert [q.get("continue") for q in kube.queries] == [None, "1"]
    assert all(q["labelSelector"] == "ember.dev/function" for q in kube.queries)


async def test_a_permanent_error_is_not_tried_again() -> None:
    class Fails(Recorder):
        async def __call__(self, ctx: Context, kind: str, body: Mapping[str, Any]) -> None:
            await super().__call__(ctx, kind, body)
            raise kopf.PermanentError("no")

    rec = Fails()
    f = follower(rec)
    f.dispatch("MODIFIED", deployment("ns", "fn", owner="fn"))
    await asyncio.sleep(0.05)
    await settle(f)
    assert rec.calls == [("MODIFIED", "fn", 0)]


class StatusKube:
    def __init__(self) -> None:
        self.patches: list[tuple[str, str, str, dict[str, Any]]] = []

    async def patch_status(self, kind: str, ns: str, name: str, status: Any) -> bool:
        self.patches.append((kind, ns, name, dict(status)))
        return True


def ready_deployment() -> dict[str, Any]:
    d = deployment("ns", "fn", owner="fn")
    d["metadata"]["generation"] = 1
    d["spec"] = {"replicas": 1}
    d["status"] = {
        "observedGeneration": 1,
        "replicas": 1,
        "readyReplicas": 1,
        "updatedReplicas": 1,
        "availableReplicas": 1,
    }
    return d


async def test_deployment_event_of_a_function_reconciled_here_reports_its_status() -> None:
    kube = StatusKube()
    ctx = Context(config=Config(), kube=kube)  # type: ignore[arg-type]
    ctx.state(("ns", "fn")).last_status = {}
    await deployment_event(ctx, "MODIFIED", ready_deployment())
    ((kind, ns, name, status),) = kube.patches
    assert (kind, ns, name) == ("Function", "ns", "fn")
    assert status["readyReplicas"] == 1
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("True", st.REASON_AVAILABLE)
    # The same Deployment again changes nothing, so nothing is written.
    await deployment_event(ctx, "MODIFIED", ready_deployment())
    assert len(kube.patches) == 1


async def test_deployment_event_before_the_functions_first_reconcile_writes_nothing() -> None:
    kube = StatusKube()
    ctx = Context(config=Config(), kube=kube)  # type: ignore[arg-type]
    await deployment_event(ctx, "MODIFIED", ready_deployment())
    ctx.state(("ns", "fn"))  # a reconcile has begun but not reported yet
    await deployment_event(ctx, "MODIFIED", ready_deployment())
    assert kube.patches == [] and ctx.functions[("ns", "fn")].last_status is None


async def test_a_failed_event_is_not_retried_once_a_newer_one_was_handled() -> None:
    rec = Recorder(fail_first=1, delay=0.3)
    f = follower(rec)
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
    f = follower(rec)
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


async def test_after_a_restart_an_unchanged_status_still_lets_deployment_events_report() -> None:
    """A restarted operator's reconcile may find the stored status already
    right and write nothing; later Deployment changes must still be reported."""
    key = ("ns", "fn")
    zero = st.summarize_deployment({"spec": {"replicas": 0}, "status": {}})
    before = StatusKube()
    await report(Context(config=Config(), kube=before), key, zero, generation=1)  # type: ignore[arg-type]
    ((*_, stored),) = before.patches

    kube = StatusKube()
    ctx = Context(config=Config(), kube=kube)  # type: ignore[arg-type]
    await report(ctx, key, zero, generation=1, previous=stored)
    assert kube.patches == []  # nothing to write
    await deployment_event(ctx, "MODIFIED", ready_deployment())
    ((_, _, _, status),) = kube.patches
    assert status["readyReplicas"] == 1


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
    f = follower(rec)
    kube = ScriptedWatchKube(
        [
            {"type": "ADDED", "object": versioned(deployment("ns", "a", owner="a"), "6")},
            {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "7"}}},
            {"type": "ADDED", "object": versioned(deployment("ns", "b", owner="b"), "8")},
            {"type": "DELETED", "object": versioned(deployment("ns", "a", owner="a"), "9")},
            {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "10"}}},
        ]
    )
    w = Watch(kube, "/apis/apps/v1/deployments", f)  # type: ignore[arg-type]
    assert await w.watch("5") == "10"
    await settle(f)
    assert kube.queries[0]["resourceVersion"] == "5"
    assert kube.queries[0]["allowWatchBookmarks"] == "true"
    assert set(w.known) == {("ns", "b")}
    # a's two events came before its handler ran: only the newest is handled.
    assert sorted(rec.calls) == [("ADDED", "b", 0), ("DELETED", "a", 0)]


async def test_watch_says_list_again_on_410_and_raises_other_errors() -> None:
    f = follower(Recorder())
    gone = ScriptedWatchKube([{"type": "ERROR", "object": {"code": 410, "message": "too old"}}])
    assert await Watch(gone, "/p", f).watch("5") is None  # type: ignore[arg-type]
    broken = ScriptedWatchKube([{"type": "ERROR", "object": {"code": 500, "message": "boom"}}])
    with pytest.raises(ApiError) as err:
        await Watch(broken, "/p", f).watch("5")  # type: ignore[arg-type]
    assert err.value.status == 500


async def test_a_watch_that_fails_at_once_backs_off_between_lists(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ember_operator.reconcile import follow

    monkeypatch.setattr(follow, "BACKOFF_FIRST", 0.01)
    monkeypatch.setattr(follow, "BACKOFF_MAX", 0.04)

    class Flapping(PagedKube):
        async def watch(
            self, url: str, query: Mapping[str, str], timeout_seconds: int
        ) -> AsyncIterator[dict[str, Any]]:
            yield {"type": "ERROR", "object": {"code": 410}}

    kube = Flapping([[]])
    task = asyncio.create_task(Watch(kube, "/p", follower(Recorder())).run())  # type: ignore[arg-type]
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # 0.01 + 0.02 + 0.04 + 0.04 ... : about 8 lists in 0.3 s, not thousands.
    assert 3 <= len(kube.queries) <= 20, len(kube.queries)
