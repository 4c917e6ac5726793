"""The Function handler's decisions, on a fake API: what it applies, what
it reports, and which Deployment events it answers."""

from __future__ import annotations

import kopf
import pytest

from ember_operator import status as st
from ember_operator.reconcile.function import deployment_event, reconcile
from tests.unit.operator.fakes import FakeKube, context, deployment, function_body

pytestmark = pytest.mark.unit


def conditions(kube: FakeKube) -> dict[str, dict[str, str]]:
    return {c["type"]: c for c in kube.statuses("Function", "fn")[-1]["conditions"]}


async def test_deployment_event_of_a_function_reconciled_here_reports_its_status() -> None:
    kube = FakeKube()
    ctx = context(kube)
    ctx.state(("ns", "fn")).last_status = {}
    await deployment_event(ctx, "MODIFIED", deployment(ready=1))
    ((kind, ns, name, status),) = kube.patches
    assert (kind, ns, name) == ("Function", "ns", "fn")
    assert status["readyReplicas"] == 1
    assert conditions(kube)[st.READY]["reason"] == st.REASON_AVAILABLE
    # The same Deployment again changes nothing, so nothing is written.
    await deployment_event(ctx, "MODIFIED", deployment(ready=1))
    assert len(kube.patches) == 1


async def test_deployment_event_before_the_functions_first_reconcile_writes_nothing() -> None:
    kube = FakeKube()
    ctx = context(kube)
    await deployment_event(ctx, "MODIFIED", deployment(ready=1))
    ctx.state(("ns", "fn"))  # a reconcile has begun but not reported yet
    await deployment_event(ctx, "MODIFIED", deployment(ready=1))
    assert kube.patches == [] and ctx.functions[("ns", "fn")].last_status is None


async def test_deployment_events_not_controlled_by_a_watched_function_are_ignored() -> None:
    kube = FakeKube()
    ctx = context(kube, namespaces=("!bench-*",))
    for key in (("ns", "fn"), ("bench-1", "fn")):
        ctx.state(key).last_status = {}
    await deployment_event(ctx, "MODIFIED", deployment(owner=None, ready=1))
    await deployment_event(ctx, "MODIFIED", deployment(ns="bench-1", ready=1))
    assert kube.patches == []


@pytest.mark.parametrize(
    ("source", "reason", "words"),
    [
        ("def handle(:\n", st.REASON_SOURCE_SYNTAX_ERROR, ["main.py, line 1"]),
        (
            "def handler(e, c):\n    return e\n",
            st.REASON_HANDLER_NOT_FOUND,
            ["'handle'", "handler"],
        ),
    ],
)
async def test_broken_inline_source_is_reported_at_apply_time_and_not_applied(
    source: str, reason: str, words: list[str]
) -> None:
    kube = FakeKube()
    ctx = context(kube)
    body = function_body(source=source, scale={"min": 0, "max": 1})
    with pytest.raises(kopf.PermanentError):
        await reconcile(ctx, body, fresh=True)
    assert kube.applied == []  # no pod will crash-loop on it
    failed = conditions(kube)[st.FAILED]
    assert failed["reason"] == reason
    assert all(w in failed["message"] for w in words), failed["message"]


async def test_a_broken_edit_keeps_counting_the_pods_of_the_last_good_spec() -> None:
    kube = FakeKube(("Deployment", deployment(ready=1)))
    ctx = context(kube)
    with pytest.raises(kopf.PermanentError):
        await reconcile(ctx, function_body(source="def handle(:\n"), fresh=False)
    status = kube.statuses("Function", "fn")[-1]
    assert status["readyReplicas"] == 1
    assert conditions(kube)[st.READY]["reason"] == st.REASON_SOURCE_SYNTAX_ERROR
    assert kube.applied == []


async def test_a_good_spec_is_applied_and_reported() -> None:
    kube = FakeKube()
    ctx = context(kube)
    await reconcile(ctx, function_body(), fresh=True)
    assert [m["kind"] for m in kube.applied] == ["ConfigMap", "Service", "Deployment"]
    assert st.FAILED not in conditions(kube)
