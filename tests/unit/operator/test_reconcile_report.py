"""Writing a Function's status: only on change, from the Deployment's
summary, the spec and the pods, whichever event brought the news."""

from __future__ import annotations

import pytest

from ember_operator import status as st
from ember_operator.diagnose.deployment import summarize_deployment
from ember_operator.reconcile.function import deployment_event
from ember_operator.reconcile.report import pod_event, report
from tests.unit.operator.fakes import FakeKube, context, deployment, pod

pytestmark = pytest.mark.unit

PULL = {"reason": "ErrImagePull", "message": 'failed to resolve reference "nope:0"'}


def ready_of(status: dict[str, object]) -> dict[str, str]:
    conditions = status["conditions"]
    assert isinstance(conditions, list)
    return next(c for c in conditions if c["type"] == st.READY)


async def test_after_a_restart_an_unchanged_status_still_lets_deployment_events_report() -> None:
    """A restarted operator's reconcile may find the stored status already
    right and write nothing; later Deployment changes must still be reported."""
    key = ("ns", "fn")
    zero = summarize_deployment({"spec": {"replicas": 0}, "status": {}})
    before = FakeKube()
    await report(context(before), key, zero, generation=1)
    ((*_, stored),) = before.patches

    kube = FakeKube()
    ctx = context(kube)
    await report(ctx, key, zero, generation=1, previous=stored)
    assert kube.patches == []  # nothing to write
    await deployment_event(ctx, "MODIFIED", deployment(ready=1))
    ((_, _, _, status),) = kube.patches
    assert status["readyReplicas"] == 1


async def test_no_url_without_a_gateway_and_the_gateways_url_with_one() -> None:
    zero = summarize_deployment({"spec": {"replicas": 0}, "status": {}})
    kube = FakeKube()
    await report(context(kube), ("ns", "fn"), zero, generation=1)
    assert kube.patches[0][3]["url"] is None  # a merge patch: removes a stale URL
    kube = FakeKube()
    await report(context(kube, gateway_url="http://gw"), ("ns", "fn"), zero, generation=1)
    assert kube.patches[0][3]["url"] == "http://gw/fn/ns/fn"


async def test_a_pod_that_cannot_pull_its_image_fails_the_function_within_one_event() -> None:
    kube = FakeKube()
    ctx = context(kube)
    rolling = summarize_deployment(deployment(ready=0))
    await report(ctx, ("ns", "fn"), rolling, generation=1)
    assert ready_of(kube.patches[-1][3])["reason"] == st.REASON_ROLLING_OUT

    await pod_event(ctx, "MODIFIED", pod(waiting=PULL, image="nope:0"))
    ready = ready_of(kube.patches[-1][3])
    assert (ready["status"], ready["reason"]) == ("False", st.REASON_IMAGE_PULL_FAILED)
    assert "'nope:0'" in ready["message"] and "failed to resolve" in ready["message"]
    writes = len(kube.patches)
    await pod_event(ctx, "MODIFIED", pod(waiting=PULL, image="nope:0"))
    assert len(kube.patches) == writes  # same problem: no write

    await pod_event(ctx, "DELETED", pod(waiting=PULL, image="nope:0"))
    assert ready_of(kube.patches[-1][3])["reason"] == st.REASON_ROLLING_OUT


async def test_a_problem_seen_before_the_first_reconcile_is_in_its_report() -> None:
    kube = FakeKube()
    ctx = context(kube)
    fault = {"exitCode": 15, "reason": "Error", "message": "Runtime.HandlerNotFound: no 'h'"}
    await pod_event(
        ctx, "MODIFIED", pod(waiting={"reason": "CrashLoopBackOff"}, last_terminated=fault)
    )
    assert kube.patches == []  # nothing reported here yet
    await report(ctx, ("ns", "fn"), summarize_deployment(deployment(ready=0)), generation=1)
    ready = ready_of(kube.patches[-1][3])
    assert ready["reason"] == st.REASON_LOAD_FAILED
    assert "Runtime.HandlerNotFound: no 'h'" in ready["message"]


async def test_healthy_pods_of_unknown_functions_leave_no_state() -> None:
    ctx = context(FakeKube())
    await pod_event(ctx, "MODIFIED", pod(ready=True))
    await pod_event(ctx, "DELETED", pod())
    assert ctx.functions == {}
