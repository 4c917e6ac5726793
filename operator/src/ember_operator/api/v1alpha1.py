"""The ``ember.dev/v1alpha1`` API: Function and Trigger, written once.

These models generate the CRD schemas (``api/crd.py``) and parse bodies inside
the handlers, so the shape users write against and the shape the operator reads
can never drift apart. Validation that must refuse an object at ``kubectl
apply`` time lives here too, as CEL rules (``x-kubernetes-validations``) next
to the field they guard, so the API server's message names that field.

CRD defaults are emitted for scalar fields only: an absent ``scale`` or ``env``
stays absent in the stored object, and the operator fills it in from the same
model defaults when it parses the body.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import ConfigDict, Field

from ember_operator.api.corev1 import (
    DNS_SUBDOMAIN,
    EnvVar,
    K8sModel,
    ResourceRequirements,
    cel_rules,
)
from ember_operator.api.triggers import (
    CRON_PATTERN,
    RESERVED_STREAM_PREFIX,
    TIMEZONE_PATTERN,
    AsyncPolicy,
    Backoff,
    HttpMethod,
    HttpTrigger,
    MissedRuns,
    QueueTrigger,
    ScheduleTrigger,
)

__all__ = [
    "CRON_PATTERN",
    "RESERVED_STREAM_PREFIX",
    "TIMEZONE_PATTERN",
    "AsyncPolicy",
    "Backoff",
    "HttpMethod",
    "HttpTrigger",
    "MissedRuns",
    "QueueTrigger",
    "ScheduleTrigger",
]

GROUP = "ember.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

# "module:function"; the module may be dotted (package.module:function).
# Written with [.] rather than an escaped dot so it embeds in a CEL string as is.
HANDLER_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*([.][A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$"


class Runtime(StrEnum):
    """Runtimes Ember ships an image for."""

    PYTHON311 = "python3.11"


DEFAULT_RUNTIME = Runtime.PYTHON311


class Scale(K8sModel):
    """Replica bounds and the autoscaler's knobs."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            ("self.min <= self.max", "scale.min must be less than or equal to scale.max")
        )
    )

    min: int = Field(
        default=0, ge=0, le=1000, description="0 scales to zero; more keeps replicas warm."
    )
    max: int = Field(default=10, ge=1, le=1000, description="Upper bound on replicas.")
    target: int = Field(
        default=5, ge=1, le=1000, description="Target in-flight invocations per replica."
    )
    idle_seconds: int = Field(
        default=60, ge=0, le=86400, description="Idle time before scaling to zero (min == 0)."
    )


class FunctionSpec(K8sModel):
    """What to run and how to scale it."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            (
                "has(self.source) != has(self.image)",
                "exactly one of spec.source or spec.image must be set",
            )
        )
    )

    runtime: Runtime = Field(default=DEFAULT_RUNTIME, description="Runtime image family.")
    handler: str = Field(
        min_length=3,
        max_length=253,
        description='Entry point as "module:function", e.g. "main:handle".',
        json_schema_extra=cel_rules(
            (
                f"self.matches('{HANDLER_PATTERN}')",
                'handler must have the form "module:function", e.g. "main:handle"',
            )
        ),
    )
    source: str | None = Field(
        default=None,
        min_length=1,
        max_length=512 * 1024,
        description='Inline Python source, importable as module "main".',
    )
    image: str | None = Field(
        default=None,
        min_length=1,
        max_length=512,
        description="An image built FROM the runtime image, holding code and dependencies.",
    )
    env: list[EnvVar] = Field(
        default_factory=list,
        max_length=128,
        description="core/v1 EnvVar list.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    resources: ResourceRequirements | None = Field(
        default=None, description="core/v1 ResourceRequirements; defaults apply when empty."
    )
    timeout_seconds: int = Field(
        default=30, ge=1, le=900, description="Per-invocation deadline (504 past it)."
    )
    concurrency: int = Field(
        default=10, ge=1, le=1000, description="Hard limit of in-flight invocations per replica."
    )
    scale: Scale = Field(default_factory=Scale)
    async_: AsyncPolicy | None = Field(
        default=None,
        alias="async",
        description="Retries, backoff and concurrency of async invocations.",
    )


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(K8sModel):
    """A metav1.Condition-like entry; reasons are constants (see status.py)."""

    type: str = Field(max_length=64)
    status: ConditionStatus
    reason: str = Field(max_length=64)
    message: str = Field(default="", max_length=4096)
    last_transition_time: str | None = Field(
        default=None, json_schema_extra={"format": "date-time"}
    )
    observed_generation: int | None = Field(default=None, ge=0)


_CONDITIONS_LIST: dict[str, Any] = {
    "x-kubernetes-list-type": "map",
    "x-kubernetes-list-map-keys": ["type"],
}


class AutoscalerStatus(K8sModel):
    """The autoscaler's last decision; reasons are constants (see status.py)."""

    desired_replicas: int | None = Field(default=None, ge=0)
    observed_concurrency: float | None = Field(
        default=None, ge=0, description="In flight + held over all gateways, as decided on."
    )
    panic: bool | None = None
    reason: str | None = Field(default=None, max_length=64)
    last_scale_time: str | None = Field(default=None, json_schema_extra={"format": "date-time"})
    scale_ups: int | None = Field(default=None, ge=0)
    scale_downs: int | None = Field(default=None, ge=0)


class FunctionStatus(K8sModel):
    conditions: list[Condition] = Field(
        default_factory=list, max_length=8, json_schema_extra=_CONDITIONS_LIST
    )
    observed_generation: int | None = Field(default=None, ge=0)
    replicas: int | None = Field(default=None, ge=0)
    ready_replicas: int | None = Field(default=None, ge=0)
    url: str | None = None
    autoscaler: AutoscalerStatus | None = None


class TriggerSpec(K8sModel):
    """What calls a Function: exactly one of http, schedule or queue."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            (
                "[has(self.http), has(self.schedule), has(self.queue)].filter(x, x).size() == 1",
                "exactly one of spec.http, spec.schedule or spec.queue must be set",
            )
        )
    )

    function: str = Field(
        min_length=1,
        max_length=253,
        pattern=DNS_SUBDOMAIN,
        description="A Function in the same namespace.",
    )
    http: HttpTrigger | None = None
    schedule: ScheduleTrigger | None = None
    queue: QueueTrigger | None = None


class TriggerStatus(K8sModel):
    conditions: list[Condition] = Field(
        default_factory=list, max_length=8, json_schema_extra=_CONDITIONS_LIST
    )
    observed_generation: int | None = Field(default=None, ge=0)
    url: str | None = Field(
        default=None, description="Where the gateway serves an HTTP Trigger, while it is Ready."
    )
