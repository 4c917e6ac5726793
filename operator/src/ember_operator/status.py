"""Condition types, constant reasons, and the one way conditions are built.

Reasons are constants so that tools and tests can match on them; messages are
for humans and may change. Functions and Triggers build their conditions
with ``conditions`` (so both keep ``lastTransitionTime`` the same way) and
compare them with ``same_conditions`` (so neither writes a status that only
a timestamp would change). What a condition says is decided elsewhere, by
the pure rules in ``diagnose``.
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
# A Function, from its Deployment:
REASON_AVAILABLE = "MinimumReplicasAvailable"
REASON_SCALED_TO_ZERO = "ScaledToZero"
REASON_SCALING_TO_ZERO = "ScalingToZero"
REASON_ROLLING_OUT = "RollingOut"
REASON_WAITING_FOR_DEPLOYMENT = "WaitingForDeployment"
REASON_PROGRESS_DEADLINE = "ProgressDeadlineExceeded"
REASON_REPLICA_FAILURE = "ReplicaFailure"
REASON_DEPLOYMENT_MISSING = "DeploymentMissing"
# A Function, from its pods (why they cannot start):
REASON_IMAGE_PULL_FAILED = "ImagePullFailed"
REASON_LOAD_FAILED = "FunctionLoadFailed"
REASON_CONTAINER_FAILED = "ContainerFailed"
REASON_CONTAINER_CONFIG = "ContainerConfigError"
REASON_UNSCHEDULABLE = "Unschedulable"
# A Function, from its spec:
REASON_SECRET_NOT_FOUND = "SecretNotFound"
REASON_CONFIGMAP_NOT_FOUND = "ConfigMapNotFound"
REASON_INVALID_SPEC = "InvalidSpec"
REASON_NAME_CONFLICT = "NameConflict"
REASON_SOURCE_SYNTAX_ERROR = "SourceSyntaxError"
REASON_HANDLER_NOT_FOUND = "HandlerNotFound"
# A Trigger:
REASON_FUNCTION_NOT_FOUND = "FunctionNotFound"
REASON_KIND_NOT_SERVED = "TriggerKindNotServed"  # no gateway / no dispatcher in this install
REASON_INVALID_SCHEDULE = "InvalidSchedule"  # a cron expression or zone the scheduler refuses
REASON_ROUTED = "Routed"  # an HTTP Trigger the gateway routes
REASON_PATH_CONFLICT = "PathConflict"  # an older HTTP Trigger owns the path
REASON_SCHEDULED = "Scheduled"  # a schedule Trigger the dispatcher fires
REASON_CONSUMING = "Consuming"  # a queue Trigger whose stream the dispatcher consumes
# The autoscaler's last decision (Function status.autoscaler.reason):
REASON_AUTOSCALE_STABLE = "StableConcurrency"  # the stable window's average
REASON_AUTOSCALE_PANIC = "Panic"  # a surge above 2x capacity: up at once, never down
REASON_AUTOSCALE_IDLE = "Idle"  # idleSeconds without requests: zero
REASON_AUTOSCALE_RECENT_REQUESTS = "RecentRequests"  # kept at one until idleSeconds pass
REASON_AUTOSCALE_MISSING_STATS = "MissingStats"  # a gateway did not answer: no scale-down
REASON_AUTOSCALE_MIN = "AtMinimum"  # clamped up to scale.min
REASON_AUTOSCALE_MAX = "AtMaximum"  # clamped down to scale.max


@dataclass(frozen=True)
class SpecError:
    """A problem in the user's spec: reported as a condition, never retried
    fast. ``retry`` is False for what only a new spec can fix (the source
    itself), True for what may heal by itself (a Secret created later)."""

    reason: str
    message: str
    retry: bool = True


@dataclass(frozen=True)
class Condition:
    """One condition as a rule decides it, before any timestamp."""

    type: str
    status: bool
    reason: str
    message: str


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def conditions(
    wanted: Sequence[Condition],
    previous: Sequence[Mapping[str, Any]] = (),
    at: str | None = None,
) -> list[dict[str, Any]]:
    """The status entries for ``wanted``; ``lastTransitionTime`` moves only
    when a condition's status flips (else it is carried over from
    ``previous``), as Kubernetes conditions do."""
    at = at or now()
    before = {str(c.get("type")): c for c in previous}
    out = []
    for c in wanted:
        text = "True" if c.status else "False"
        old = before.get(c.type) or {}
        since = old.get("lastTransitionTime") if old.get("status") == text else None
        out.append(
            {
                "type": c.type,
                "status": text,
                "reason": c.reason,
                "message": c.message,
                "lastTransitionTime": since or at,
            }
        )
    return out


def same_conditions(a: Sequence[Mapping[str, Any]], b: Sequence[Mapping[str, Any]]) -> bool:
    """Equal apart from timestamps: nothing worth a write."""

    def key(cs: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
        fields = ("type", "status", "reason", "message")
        return sorted(tuple(c.get(f) for f in fields) for c in cs)

    return key(a) == key(b)
