"""From a Deployment to the Function's conditions."""

from __future__ import annotations

from typing import Any

import pytest

from ember_operator import status as st

pytestmark = pytest.mark.unit


def deployment(desired: int, **status: Any) -> dict[str, Any]:
    return {"metadata": {"generation": 2}, "spec": {"replicas": desired}, "status": status}


def test_scaled_to_zero_is_ready() -> None:
    s = st.summarize_deployment(deployment(0))
    assert s.ready and s.reason == st.REASON_SCALED_TO_ZERO


def test_scaling_to_zero_is_ready_but_not_zero_until_pods_are_gone() -> None:
    # Scale set to 0, the Deployment's status still counts the last pod.
    d = deployment(0, observedGeneration=1, replicas=1, readyReplicas=1)
    s = st.summarize_deployment(d)
    assert s.ready and s.reason == st.REASON_SCALING_TO_ZERO
    assert (s.replicas, s.ready_replicas) == (1, 1)
    gone = st.summarize_deployment(deployment(0, observedGeneration=2, replicas=0))
    assert gone.reason == st.REASON_SCALED_TO_ZERO and gone.ready_replicas == 0


def test_all_updated_replicas_available_is_ready() -> None:
    d = deployment(
        2, observedGeneration=2, replicas=2, updatedReplicas=2, availableReplicas=2, readyReplicas=2
    )
    s = st.summarize_deployment(d)
    assert s.ready and s.reason == st.REASON_AVAILABLE and s.ready_replicas == 2


def test_rollout_in_progress_is_not_ready() -> None:
    d = deployment(
        2, observedGeneration=2, replicas=3, updatedReplicas=1, availableReplicas=2, readyReplicas=2
    )
    s = st.summarize_deployment(d)
    assert not s.ready and s.reason == st.REASON_ROLLING_OUT and not s.failed
    assert st.summarize_deployment(deployment(2, observedGeneration=1)).reason == (
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
    s = st.summarize_deployment(d)
    assert s.failed and s.reason == st.REASON_PROGRESS_DEADLINE
    conds = {c["type"]: c for c in st.function_conditions(s, None, now="T")}
    assert conds[st.FAILED]["status"] == "True" and conds[st.READY]["status"] == "False"
    assert st.PROGRESSING not in conds


def test_missing_deployment() -> None:
    assert st.summarize_deployment(None).reason == st.REASON_DEPLOYMENT_MISSING


def test_spec_error_wins_and_transition_time_moves_only_on_flips() -> None:
    ready = st.summarize_deployment(deployment(0))
    first = st.function_conditions(ready, None, now="T1")
    assert {c["type"]: c["status"] for c in first} == {"Ready": "True", "Progressing": "False"}
    again = st.function_conditions(ready, None, first, now="T2")
    assert all(c["lastTransitionTime"] == "T1" for c in again)
    assert st.same_conditions(first, again)
    err = st.SpecError(st.REASON_SECRET_NOT_FOUND, "env A refers to Secret 's'")
    failed = st.function_conditions(ready, err, again, now="T3")
    by_type = {c["type"]: c for c in failed}
    assert by_type["Ready"]["status"] == "False" and by_type["Ready"]["lastTransitionTime"] == "T3"
    assert by_type["Failed"]["reason"] == st.REASON_SECRET_NOT_FOUND
    assert not st.same_conditions(first, failed)
