"""Why pods cannot start, from the pod status the kubelet writes."""

from __future__ import annotations

import pytest

from ember_operator import status as st
from ember_operator.diagnose.pods import PodProblem, first_problem, pod_problem
from tests.unit.operator.fakes import pod

pytestmark = pytest.mark.unit


def test_an_image_that_cannot_be_pulled_is_named_with_the_kubelets_reason() -> None:
    waiting = {
        "reason": "ImagePullBackOff",
        "message": 'Back-off pulling image "ember.invalid/nope:0": ErrImagePull: dial tcp: lookup',
    }
    problem = pod_problem(pod(waiting=waiting, image="ember.invalid/nope:0"))
    assert problem is not None and problem.reason == st.REASON_IMAGE_PULL_FAILED
    assert problem.message.startswith("image 'ember.invalid/nope:0' cannot be pulled")
    assert "(ImagePullBackOff)" in problem.message and "dial tcp" in problem.message


def test_the_runtimes_load_error_is_read_from_the_last_termination() -> None:
    fault = {
        "exitCode": 15,
        "reason": "Error",
        "message": "Runtime.HandlerNotFound: /var/ember/source/main.py is expected to contain"
        " a function named 'handler'. Found: handle",
    }
    crash_looping = pod(
        waiting={"reason": "CrashLoopBackOff", "message": "back-off 10s"}, last_terminated=fault
    )
    problem = pod_problem(crash_looping)
    assert problem is not None and problem.reason == st.REASON_LOAD_FAILED
    assert "exit code 15" in problem.message and problem.message.endswith("Found: handle")
    # The first exit, before the kubelet restarts it, says the same.
    assert pod_problem(pod(terminated=fault)) == problem


def test_other_crashes_and_oom_kills_are_container_failures() -> None:
    crash = pod_problem(pod(terminated={"exitCode": 1, "reason": "Error", "message": "boom\n"}))
    assert crash == PodProblem(
        st.REASON_CONTAINER_FAILED, "the container exited with code 1 (Error): boom"
    )
    oom = pod_problem(pod(terminated={"exitCode": 137, "reason": "OOMKilled"}))
    assert oom is not None and "memory limit" in oom.message


def test_a_pod_that_serves_or_is_still_starting_has_no_problem() -> None:
    assert pod_problem(pod(ready=True, last_terminated={"exitCode": 1})) is None
    assert pod_problem(pod(waiting={"reason": "ContainerCreating"})) is None
    assert pod_problem(pod()) is None
    leaving = pod(waiting={"reason": "ErrImagePull"})
    leaving["metadata"]["deletionTimestamp"] = "T"
    assert pod_problem(leaving) is None


def test_unschedulable_and_config_errors_say_why() -> None:
    p = pod()
    p["status"]["conditions"] = [
        {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": "0/1 nodes are available: 1 Insufficient memory.",
        }
    ]
    problem = pod_problem(p)
    assert problem is not None and problem.reason == st.REASON_UNSCHEDULABLE
    assert "Insufficient memory" in problem.message
    config = pod_problem(
        pod(waiting={"reason": "CreateContainerConfigError", "message": 'secret "s" not found'})
    )
    assert config is not None and config.reason == st.REASON_CONTAINER_CONFIG


def test_long_messages_are_clipped_and_one_problem_is_picked_stably() -> None:
    long = pod_problem(pod(waiting={"reason": "ErrImagePull", "message": "x" * 5000}))
    assert long is not None and len(long.message) <= 1024 and long.message.endswith("...")
    a, b = PodProblem("A", "a"), PodProblem("B", "b")
    assert first_problem({"pod-b": b, "pod-a": a}) == a
    assert first_problem({}) is None
