"""Trigger status: not Ready while nothing serves its kind, and following
its Function's creation and deletion without a list call."""

from __future__ import annotations

from typing import Any

import kopf
import pytest

from ember_operator import status as st
from ember_operator.reconcile.context import Context
from ember_operator.reconcile.function import function_event, reconcile
from ember_operator.reconcile.trigger import trigger_changed, trigger_event
from tests.unit.operator.fakes import FakeKube, context, function_body

pytestmark = pytest.mark.unit


def trigger_body(name: str = "tick", function: str = "fn", generation: int = 1) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "ns", "generation": generation},
        "spec": {"function": function, "schedule": {"cron": "* * * * *"}},
    }


async def changed(ctx: Context, body: dict[str, Any]) -> None:
    await trigger_changed(
        body=kopf.Body(body),  # type: ignore[arg-type]
        namespace="ns",
        name=body["metadata"]["name"],
        memo=kopf.Memo(ember=ctx),
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
