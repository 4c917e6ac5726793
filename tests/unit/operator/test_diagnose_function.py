"""A Function's conditions from the spec error, the pods and the Deployment,
most specific first."""

from __future__ import annotations

import pytest

from ember_operator import status as st
from ember_operator.diagnose.deployment import summarize_deployment
from ember_operator.diagnose.function import function_conditions
from ember_operator.diagnose.pods import PodProblem

pytestmark = pytest.mark.unit


def deployment(desired: int, **status: object) -> dict[str, object]:
    return {"metadata": {"generation": 2}, "spec": {"replicas": desired}, "status": status}


def test_spec_error_wins_and_transition_time_moves_only_on_flips() -> None:
    ready = summarize_deployment(deployment(0))
    first = function_conditions(ready, None, now="T1")
    assert {c["type"]: c["status"] for c in first} == {"Ready": "True", "Progressing": "False"}
    again = function_conditions(ready, None, first, now="T2")
    assert all(c["lastTransitionTime"] == "T1" for c in again)
    assert st.same_conditions(first, again)
    err = st.SpecError(st.REASON_SECRET_NOT_FOUND, "env A refers to Secret 's'")
    failed = function_conditions(ready, err, again, now="T3")
    by_type = {c["type"]: c for c in failed}
    assert by_type["Ready"]["status"] == "False" and by_type["Ready"]["lastTransitionTime"] == "T3"
    assert by_type["Failed"]["reason"] == st.REASON_SECRET_NOT_FOUND
    assert not st.same_conditions(first, failed)


def test_a_pod_problem_fails_a_function_that_is_not_ready_and_only_then() -> None:
    problem = PodProblem(st.REASON_IMAGE_PULL_FAILED, "image 'x' cannot be pulled")
    rolling = summarize_deployment(
        deployment(1, observedGeneration=2, replicas=1, updatedReplicas=1, availableReplicas=0)
    )
    by_type = {c["type"]: c for c in function_conditions(rolling, None, pod_problem=problem)}
    assert by_type["Ready"]["reason"] == st.REASON_IMAGE_PULL_FAILED
    assert by_type["Failed"]["message"] == "image 'x' cannot be pulled"
    assert "Progressing" not in by_type
    serving = summarize_deployment(
        deployment(
            1, observedGeneration=2, replicas=1, readyReplicas=1, updatedReplicas=1,
            availableReplicas=1,
        )
    )  # fmt: skip
    by_type = {c["type"]: c for c in function_conditions(serving, None, pod_problem=problem)}
    assert by_type["Ready"]["status"] == "True"


def test_a_spec_error_outranks_a_pod_problem() -> None:
    problem = PodProblem(st.REASON_LOAD_FAILED, "Runtime.HandlerNotFound")
    err = st.SpecError(st.REASON_SOURCE_SYNTAX_ERROR, "main.py, line 1", retry=False)
    conds = function_conditions(summarize_deployment(None), err, pod_problem=problem)
    assert {c["reason"] for c in conds} == {st.REASON_SOURCE_SYNTAX_ERROR}
