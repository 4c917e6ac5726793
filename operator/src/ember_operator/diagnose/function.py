"""A Function's conditions: Ready plus exactly one of Progressing or Failed.

Three inputs, most specific first: a spec error (the operator refused to
apply the spec), a pod problem (pods of the current spec cannot start), and
the Deployment's summary. A pod problem only speaks while the Deployment is
not ready: once enough pods serve, a stray failing pod is not the Function's
state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ember_operator.diagnose.deployment import Summary
from ember_operator.diagnose.pods import PodProblem
from ember_operator.status import FAILED, PROGRESSING, READY, Condition, SpecError, conditions


def function_conditions(
    summary: Summary,
    spec_error: SpecError | None,
    previous: Sequence[Mapping[str, Any]] = (),
    now: str | None = None,
    pod_problem: PodProblem | None = None,
) -> list[dict[str, Any]]:
    if spec_error is not None:
        reason, message = spec_error.reason, spec_error.message
        wanted = [
            Condition(READY, False, reason, message),
            Condition(FAILED, True, reason, message),
        ]
    elif pod_problem is not None and not summary.ready:
        reason, message = pod_problem.reason, pod_problem.message
        wanted = [
            Condition(READY, False, reason, message),
            Condition(FAILED, True, reason, message),
        ]
    elif summary.failed:
        reason, message = summary.reason, summary.message
        wanted = [
            Condition(READY, False, reason, message),
            Condition(FAILED, True, reason, message),
        ]
    else:
        wanted = [
            Condition(READY, summary.ready, summary.reason, summary.message),
            Condition(PROGRESSING, not summary.ready, summary.reason, summary.message),
        ]
    return conditions(wanted, previous, now)
