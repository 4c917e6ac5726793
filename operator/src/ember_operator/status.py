"""Condition types, constant reasons, and the pure rule from a Deployment to a
Function's status.

Reasons are constants so that tools and tests can match on them; messages are
for humans and may change. The rule follows Knative: a Function scaled to zero
is Ready (there is nothing to wait for), and it is Progressing while its
Deployment rolls out, Failed when the rollout or the spec cannot succeed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

READY = "Ready"
PROGRESSING = "Progressing"
FAILED = "Failed"

# Reasons (CamelCase, stable).
REASON_AVAILABLE = "MinimumReplicasAvailable"
REASON_SCALED_TO_ZERO = "ScaledToZero"
REASON_SCALING_TO_ZERO = "ScalingToZero"
REASON_ROLLING_OUT = "RollingOut"
REASON_WAITING_FOR_DEPLOYMENT = "WaitingForDeployment"
REASON_PROGRESS_DEADLINE = "ProgressDeadlineExceeded"
REASON_REPLICA_FAILURE = "ReplicaFailure"
REASON_SECRET_NOT_FOUND = "SecretNotFound"
REASON_CONFIGMAP_NOT_FOUND = "ConfigMapNotFound"
REASON_INVALID_SPEC = "InvalidSpec"
REASON_NAME_CONFLICT = "NameConflict"
REASON_DEPLOYMENT_MISSING = "DeploymentMissing"
REASON_FUNCTION_FOUND = "FunctionFound"
REASON_FUNCTION_NOT_FOUND = "FunctionNotFound"


@dataclass(frozen=True)
class SpecError:
    """A problem in the user's spec: reported as a condition, never retried fast."""

    reason: str
    message: str


@dataclass(frozen=True)
class Summary:
    """What the Deployment says, reduced to what the Function reports."""

    ready: bool
    reason: str
    message: str
    replicas: int
    ready_replicas: int
    failed: bool = False


def summarize_deployment(deployment: Mapping[str, Any] | None) -> Summary:
    """Ready, Progressing or Failed, from a Deployment as the API returns it."""
    if deployment is None:
        return Summary(False, REASON_DEPLOYMENT_MISSING, "the Deployment does not exist", 0, 0)
    spec = deployment.get("spec") or {}
    st = deployment.get("status") or {}
    desired = int(spec.get("replicas", 1))
    replicas = int(st.get("replicas", 0))
    ready = int(st.get("readyReplicas", 0))
    updated = int(st.get("updatedReplicas", 0))
    available = int(st.get("availableReplicas", 0))
    generation = int((deployment.get("metadata") or {}).get("generation", 0))
    observed = int(st.get("observedGeneration", 0))
    conditions = {c.get("type"): c for c in st.get("conditions") or []}

    progressing = conditions.get("Progressing") or {}
    if progressing.get("reason") == REASON_PROGRESS_DEADLINE:
        return Summary(
            False,
            REASON_PROGRESS_DEADLINE,
            progressing.get("message") or "the rollout made no progress",
            replicas,
            ready,
            failed=True,
        )
    failure = conditions.get("ReplicaFailure") or {}
    if failure.get("status") == "True":
        return Summary(
            False,
            REASON_REPLICA_FAILURE,
            failure.get("message") or "pods cannot be created",
            replicas,
            ready,
            failed=True,
        )
    if desired == 0:
        # Still Ready (the function wakes on demand), but ScaledToZero only
        # once no pod is left: the status must not claim zero while the last
        # pod is still serving.
        if replicas or ready:
            return Summary(
                True,
                REASON_SCALING_TO_ZERO,
                f"scaling to zero, {replicas} replicas left",
                replicas,
                ready,
            )
        return Summary(True, REASON_SCALED_TO_ZERO, "scaled to zero", replicas, ready)
    if observed < generation:
        return Summary(
            False, REASON_WAITING_FOR_DEPLOYMENT, "rollout not started yet", replicas, ready
        )
    if updated < desired or available < desired or replicas > updated:
        return Summary(
            False,
            REASON_ROLLING_OUT,
            f"{min(updated, available)} of {desired} updated replicas available",
            replicas,
            ready,
        )
    return Summary(True, REASON_AVAILABLE, f"{ready} of {desired} replicas ready", replicas, ready)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _condition(
    type_: str,
    status: bool,
    reason: str,
    message: str,
    previous: Mapping[str, Mapping[str, Any]],
    now: str,
) -> dict[str, Any]:
    text = "True" if status else "False"
    before = previous.get(type_) or {}
    # lastTransitionTime moves only when the status flips.
    since = before.get("lastTransitionTime") if before.get("status") == text else None
    return {
        "type": type_,
        "status": text,
        "reason": reason,
        "message": message,
        "lastTransitionTime": since or now,
    }


def function_conditions(
    summary: Summary,
    spec_error: SpecError | None,
    previous: Sequence[Mapping[str, Any]] = (),
    now: str | None = None,
) -> list[dict[str, Any]]:
    """Ready plus exactly one of Progressing or Failed."""
    now = now or _now()
    prev = {str(c.get("type")): c for c in previous}
    if spec_error is not None:
        return [
            _condition(READY, False, spec_error.reason, spec_error.message, prev, now),
            _condition(FAILED, True, spec_error.reason, spec_error.message, prev, now),
        ]
    ready = _condition(READY, summary.ready, summary.reason, summary.message, prev, now)
    if summary.failed:
        return [ready, _condition(FAILED, True, summary.reason, summary.message, prev, now)]
    return [
        ready,
        _condition(PROGRESSING, not summary.ready, summary.reason, summary.message, prev, now),
    ]


def same_conditions(a: Sequence[Mapping[str, Any]], b: Sequence[Mapping[str, Any]]) -> bool:
    """Equal apart from timestamps: nothing worth a write."""

    def key(cs: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
        fields = ("type", "status", "reason", "message")
        return sorted(tuple(c.get(f) for f in fields) for c in cs)

    return key(a) == key(b)
