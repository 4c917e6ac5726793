"""From a Deployment as the API returns it to a Function's readiness.

The rule follows Knative: a Function scaled to zero is Ready (there is
nothing to wait for), and it is Progressing while its Deployment rolls out,
Failed when the rollout cannot succeed. Why pods fail is the pods' to say
(``diagnose.pods``): a Deployment only knows that they are not available.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ember_operator.status import (
    REASON_AVAILABLE,
    REASON_DEPLOYMENT_MISSING,
    REASON_PROGRESS_DEADLINE,
    REASON_REPLICA_FAILURE,
    REASON_ROLLING_OUT,
    REASON_SCALED_TO_ZERO,
    REASON_SCALING_TO_ZERO,
    REASON_WAITING_FOR_DEPLOYMENT,
)


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
