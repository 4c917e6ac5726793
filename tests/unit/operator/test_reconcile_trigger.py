"""Trigger status: not Ready while nothing serves its kind, and following
its Function's creation and deletion without a list call."""

from __future__ import annotations

from typing import Any

import kopf
import pytest

from ember_operator import status as st
from ember_operator.diagnose.http_paths import HttpClaim
from ember_operator.reconcile.context import Context
from ember_operator.reconcile.function import function_event, reconcile
from ember_operator.reconcile.trigger import CLAIMS, http_claims, trigger_changed, trigger_event
from tests.unit.operator.fakes import FakeKube, context, function_body

pytestmark = pytest.mark.unit


def trigger_body(name: str = "tick", function: str = "fn", generation: int = 1) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "ns", "generation": generation},
        "spec": {"function": function, "schedule": {"cron": "* * * * *"}},
    }


async def changed(
    ctx: Context, body: dict[str, Any], index: dict[str, list[HttpClaim]] | None = None
) -> None:
    await trigger_changed(
        body=kopf.Body(body),  # type: ignore[arg-type]
        namespace="ns",
        name=body["metadata"]["name"],
        memo=kopf.Memo(ember=ctx),
        http_claims=index,
    )


def ready(kube: FakeKube, name: str = "tick") -> dict[str, str]:
    (cond,) = kube.statuses("Trigger", name)[-1]["conditions"]
    return dict(cond)


async def test_trigger_follows_its_function_from_missing_to_found_to_deleted() -> None:
    kube = FakeKube(("Trigger", trigger_body()))
    ctx = context(kube)
    await changed(ctx, trigger_body())
    first = ready(kube)
    assert (first["status"], first["reason"]) == ("False", st.REASON_FUNCTION_NOT_FOUND)

    kube.put("Function", function_body())
    await reconcile(ctx, function_body(), fresh=True)
    found = ready(kube)
    assert (found["status"], found["reason"]) == ("False", st.REASON_KIND_NOT_SERVED)
    assert "schedule" in found["message"] and "fn" in found["message"]
    assert found["lastTransitionTime"] == first["lastTransitionTime"]  # still False

    writes = len(kube.patches)
    await reconcile(ctx, function_body(generation=2), fresh=False)
    assert len(kube.statuses("Trigger", "tick")) == 2  # nothing new to say
    assert len(kube.patches) > writes  # (the Function's own status)

    kube.drop("Function", "ns", "fn")
    await function_event(type="DELETED", namespace="ns", name="fn", memo=kopf.Memo(ember=ctx))
    assert ready(kube)["reason"] == st.REASON_FUNCTION_NOT_FOUND


async def test_a_new_generation_is_acknowledged_and_a_deleted_trigger_forgotten() -> None:
    kube = FakeKube(("Trigger", trigger_body()), ("Function", function_body()))
    ctx = context(kube)
    await changed(ctx, trigger_body())
    stored = kube.statuses("Trigger", "tick")[-1]
    body = trigger_body(generation=2)
    body["status"] = stored
    await changed(ctx, body)
    assert kube.statuses("Trigger", "tick")[-1]["observedGeneration"] == 2
    await trigger_event(type="DELETED", namespace="ns", name="tick", memo=kopf.Memo(ember=ctx))
    assert ctx.triggers == {} and ctx.triggers_by_function == {}


async def test_a_trigger_moved_to_another_function_is_filed_under_it() -> None:
    kube = FakeKube(("Trigger", trigger_body()))
    ctx = context(kube)
    await changed(ctx, trigger_body(function="a"))
    await changed(ctx, trigger_body(function="b", generation=2))
    assert [k for k, _ in ctx.triggers_of("ns", "a")] == []
    assert [k for k, _ in ctx.triggers_of("ns", "b")] == [("ns", "tick")]


GATEWAY = "http://gw.test"


def http_body(
    name: str, path: str, created: str, function: str = "fn", generation: int = 1
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": "ns",
            "generation": generation,
            "creationTimestamp": created,
        },
        "spec": {"function": function, "http": {"path": path}},
    }


def status(kube: FakeKube, name: str) -> dict[str, Any]:
    return kube.statuses("Trigger", name)[-1]


async def test_without_a_gateway_an_http_trigger_is_not_served() -> None:
    body = http_body("web", "/hello", "2024-01-01T00:00:00Z")
    kube = FakeKube(("Trigger", body), ("Function", function_body()))
    await changed(context(kube), body)
    assert ready(kube, "web")["reason"] == st.REASON_KIND_NOT_SERVED
    assert status(kube, "web")["url"] is None


async def test_with_a_gateway_an_http_trigger_is_routed_and_has_its_url() -> None:
    body = http_body("web", "/hello/", "2024-01-01T00:00:00Z")
    kube = FakeKube(("Trigger", body), ("Function", function_body()))
    ctx = context(kube, gateway_url=GATEWAY)
    await changed(ctx, body)
    cond = ready(kube, "web")
    assert (cond["status"], cond["reason"]) == ("True", st.REASON_ROUTED)
    assert status(kube, "web")["url"] == "http://gw.test/hello"

    # Its Function goes away: not Ready, and no URL that would answer 404.
    kube.drop("Function", "ns", "fn")
    await function_event(type="DELETED", namespace="ns", name="fn", memo=kopf.Memo(ember=ctx))
    assert ready(kube, "web")["reason"] == st.REASON_FUNCTION_NOT_FOUND
    assert status(kube, "web")["url"] is None


async def test_a_schedule_trigger_stays_not_served_with_a_gateway() -> None:
    kube = FakeKube(("Trigger", trigger_body()), ("Function", function_body()))
    await changed(context(kube, gateway_url=GATEWAY), trigger_body())
    assert ready(kube)["reason"] == st.REASON_KIND_NOT_SERVED


async def test_the_older_trigger_keeps_its_path_and_the_newer_learns_when_it_is_free() -> None:
    old = http_body("old", "/api", "2024-01-01T00:00:00Z")
    new = http_body("new", "/api/", "2024-01-02T00:00:00Z")
    kube = FakeKube(("Trigger", old), ("Trigger", new), ("Function", function_body()))
    ctx = context(kube, gateway_url=GATEWAY)
    # The newer one is handled first (an operator restart lists in any order).
    await changed(ctx, new)
    assert ready(kube, "new")["reason"] == st.REASON_ROUTED
    await changed(ctx, old)
    assert ready(kube, "old")["reason"] == st.REASON_ROUTED
    lost = ready(kube, "new")
    assert (lost["status"], lost["reason"]) == ("False", st.REASON_PATH_CONFLICT)
    assert "ns/old" in lost["message"]
    assert status(kube, "new")["url"] is None

    # The winner moves to another path: the loser is routed again.
    writes = len(kube.patches)
    await changed(ctx, http_body("old", "/v2", "2024-01-01T00:00:00Z", generation=2))
    assert ready(kube, "new")["reason"] == st.REASON_ROUTED
    assert status(kube, "new")["url"] == "http://gw.test/api"
    assert status(kube, "old")["url"] == "http://gw.test/v2"
    assert len(kube.patches) == writes + 2  # one each, nothing else

    # It comes back: the older claim wins again.
    await changed(ctx, http_body("old", "/api", "2024-01-01T00:00:00Z", generation=3))
    assert ready(kube, "new")["reason"] == st.REASON_PATH_CONFLICT

    # Deleted: its path passes on, once.
    kube.drop("Trigger", "ns", "old")
    await trigger_event(type="DELETED", namespace="ns", name="old", memo=kopf.Memo(ember=ctx))
    assert ready(kube, "new")["reason"] == st.REASON_ROUTED
    writes = len(kube.patches)
    await trigger_event(type="DELETED", namespace="ns", name="old", memo=kopf.Memo(ember=ctx))
    assert len(kube.patches) == writes


async def test_a_rival_unchanged_by_a_change_is_not_written() -> None:
    a = http_body("a", "/a", "2024-01-01T00:00:00Z")
    b = http_body("b", "/b", "2024-01-02T00:00:00Z")
    kube = FakeKube(("Trigger", a), ("Trigger", b), ("Function", function_body()))
    ctx = context(kube, gateway_url=GATEWAY)
    await changed(ctx, a)
    await changed(ctx, b)
    assert len(kube.statuses("Trigger", "a")) == 1
    await changed(ctx, http_body("b", "/c", "2024-01-02T00:00:00Z", generation=2))
    assert len(kube.statuses("Trigger", "a")) == 1


async def test_a_trigger_that_stops_being_http_frees_its_path() -> None:
    old = http_body("old", "/api", "2024-01-01T00:00:00Z")
    new = http_body("new", "/api", "2024-01-02T00:00:00Z")
    kube = FakeKube(("Trigger", old), ("Trigger", new), ("Function", function_body()))
    ctx = context(kube, gateway_url=GATEWAY)
    await changed(ctx, old)
    await changed(ctx, new)
    assert ready(kube, "new")["reason"] == st.REASON_PATH_CONFLICT
    schedule = trigger_body("old", generation=2)
    schedule["metadata"]["creationTimestamp"] = "2024-01-01T00:00:00Z"
    await changed(ctx, schedule)
    assert ready(kube, "old")["reason"] == st.REASON_KIND_NOT_SERVED
    assert ready(kube, "new")["reason"] == st.REASON_ROUTED


async def test_with_a_dispatcher_schedule_and_queue_triggers_are_ready() -> None:
    queue = {
        "metadata": {"name": "orders", "namespace": "ns", "generation": 1},
        "spec": {"function": "fn", "queue": {"stream": "orders"}},
    }
    kube = FakeKube(("Trigger", trigger_body()), ("Trigger", queue), ("Function", function_body()))
    ctx = context(kube, dispatcher_enabled=True)
    await changed(ctx, trigger_body())
    await changed(ctx, queue)
    assert (ready(kube)["status"], ready(kube)["reason"]) == ("True", st.REASON_SCHEDULED)
    assert ready(kube, "orders")["reason"] == st.REASON_CONSUMING


async def test_a_schedule_the_scheduler_refuses_is_reported_with_its_field() -> None:
    body = trigger_body()
    body["spec"]["schedule"] = {"cron": "* * * * *", "timezone": "Mars/Olympus_Mons"}
    kube = FakeKube(("Trigger", body), ("Function", function_body()))
    ctx = context(kube, dispatcher_enabled=True)
    await changed(ctx, body)
    cond = ready(kube)
    assert (cond["status"], cond["reason"]) == ("False", st.REASON_INVALID_SCHEDULE)
    assert cond["message"].startswith("spec.schedule.timezone: unknown time zone")
    fixed = trigger_body(generation=2)
    await changed(ctx, fixed)
    assert ready(kube)["reason"] == st.REASON_SCHEDULED


def claims(*bodies: dict[str, Any]) -> dict[str, list[HttpClaim]]:
    """kopf's index of these Triggers, as the index function builds it."""
    out: dict[str, list[HttpClaim]] = {}
    for body in bodies:
        meta = body["metadata"]
        got = http_claims(body=kopf.Body(body), namespace=meta["namespace"], name=meta["name"])  # type: ignore[arg-type]
        for key, claim in got.items():
            out.setdefault(key, []).append(claim)
    return out


async def test_after_a_restart_the_newer_trigger_handled_first_is_never_routed() -> None:
    old = http_body("old", "/api", "2024-01-01T00:00:00Z")
    new = http_body("new", "/api/", "2024-01-02T00:00:00Z")
    other = trigger_body("tick")
    kube = FakeKube(("Trigger", old), ("Trigger", new), ("Function", function_body()))
    ctx = context(kube, gateway_url=GATEWAY)
    index = claims(old, new, other)
    assert [c.name for c in index[CLAIMS]] == ["old", "new"]
    await changed(ctx, new, index)  # the newer one first, as a list may hand them
    assert [s["conditions"][0]["reason"] for s in kube.statuses("Trigger", "new")] == [
        st.REASON_PATH_CONFLICT
    ]
    await changed(ctx, old, index)
    assert ready(kube, "old")["reason"] == st.REASON_ROUTED
    assert len(kube.statuses("Trigger", "new")) == 1  # nothing moved: no second write
