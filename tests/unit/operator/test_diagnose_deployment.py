"""From a Deployment to a Function's readiness summary."""

from __future__ import annotations

from typing import Any

import pytest

from ember_operator import status as st
from ember_operator.diagnose.deployment import summarize_deployment
from ember_operator.diagnose.function import function_conditions

pytestmark = pytest.mark.unit


def deployment(desired: int, **status: Any) -> dict[str, Any]:
    return {"metadata": {"generation": 2}, "spec": {"replicas": desired}, "status": status}


def test_scaled_to_zero_is_ready() -> None:
    s = summarize_deployment(deployment(0))
    assert s.ready and s.reason == st.REASON_SCALED_TO_ZERO


def test_scaling_to_zero_is_ready_but_not_zero_until_pods_are_gone() -> None:
    # Scale set to 0, the Deployment's status still counts the last pod.
    d = deployment(0, observedGeneration=1, replicas=1, readyReplicas=1)
    s = summarize_deployment(d)
    assert s.ready and s.reason == st.REASON_SCALING_TO_ZERO
    assert (s.replicas, s.ready_replicas) == (1, 1)
    gone = summarize_deployment(deployment(0, observedGeneration=2, replicas=0))
    assert gone.reason == st.REASON_SCALED_TO_ZERO and gone.ready_replicas == 0


def test_all_updated_replicas_available_is_ready() -> None:
    d = deployment(
        2, observedGeneration=2, replicas=2, updatedReplicas=2, availableReplicas=2, readyReplicas=2
    )
    s = summarize_deployment(d)
    assert s.ready and s.reason == st.REASON_AVAILABLE and s.ready_replicas == 2


def test_rollout_in_progress_is_not_ready() -> None:
    d = deployment(
        2, observedGeneration=2, replicas=3, updatedReplicas=1, availableReplicas=2, readyReplicas=2
    )
    s = summarize_deployment(d)
    assert not s.ready and s.reason == st.REASON_ROLLING_OUT and not s.failed
    assert summarize_deployment(deployment(2, observedGeneration=1)).reason == (
        st.REASON_WAITING_FOR_DEPLOYMENT
    )


def test_progress_deadline_is_failed() -> None:
    d = deployment(
        1,
        observedGeneration=2,
        conditions=[
            {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}
        ],
    )
    s = summarize_deployment(d)
    assert s.failed and s.reason == st.REASON_PROGRESS_DEADLINE
    conds = {c["type"]: c for c in function_conditions(s, None, now="T")}
    assert conds[st.FAILED]["status"] == "True" and conds[st.READY]["status"] == "False"
    assert st.PROGRESSING not in conds


def test_missing_deployment() -> None:
    assert summarize_deployment(None).reason == st.REASON_DEPLOYMENT_MISSING
