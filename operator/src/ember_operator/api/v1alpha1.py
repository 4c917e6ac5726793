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

from ember_operator.api.corev1 import DNS_SUBDOMAIN, EnvVar, K8sModel, ResourceRequirements

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


def _rules(*rules: tuple[str, str]) -> dict[str, Any]:
    return {"x-kubernetes-validations": [{"rule": r, "message": m} for r, m in rules]}


class Scale(K8sModel):
    """Replica bounds and the autoscaler's knobs."""

    model_config = ConfigDict(
        json_schema_extra=_rules(
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
        json_schema_extra=_rules(
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
        json_schema_extra=_rules(
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


class HttpMethod(StrEnum):
    GET = "GET"
    POST = "POST"
    PUT = "PUT"
    PATCH = "PATCH"
    DELETE = "DELETE"
    HEAD = "HEAD"
    OPTIONS = "OPTIONS"


class HttpTrigger(K8sModel):
    path: str = Field(min_length=1, max_length=1024, pattern=r"^/[^\s?#]*$")
    methods: list[HttpMethod] = Field(
        default_factory=lambda: [HttpMethod.GET, HttpMethod.POST],
        min_length=1,
        max_length=7,
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )


# Five cron fields, or six with seconds first, each of what the scheduler's cron
# library (cronsim) reads; the operator reports what it refuses (InvalidSchedule).
CRON_FIELD = r"[0-9A-Za-z*/,#-]+"
CRON_PATTERN = rf"^{CRON_FIELD}(\s+{CRON_FIELD}){{4,5}}$"
# An IANA zone name (Europe/Berlin, Etc/GMT+2); whether it exists goes in status.
TIMEZONE_PATTERN = r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$"


class MissedRuns(StrEnum):
    """What a schedule does with ticks that passed while nothing could fire them."""

    SKIP = "Skip"
    RUN_ONCE = "RunOnce"


class ScheduleTrigger(K8sModel):
    cron: str = Field(
        min_length=9,
        max_length=128,
        pattern=CRON_PATTERN,
        description=(
            'Cron expression: five fields, e.g. "*/5 * * * *" (minute, hour, day of month,'
            ' month, day of week), or six with seconds first, e.g. "*/10 * * * * *" (every'
            " 10 seconds). Names (MON, JAN), L, W and # are accepted as cronsim reads them."
        ),
    )
    timezone: str = Field(
        default="UTC",
        min_length=1,
        max_length=64,
        pattern=TIMEZONE_PATTERN,
        description=(
            "IANA time zone the cron fields are read in, e.g. Europe/Berlin. Across DST"
            " changes a five-field job at a fixed time runs once a day (in the skipped hour"
            " right after the change, in the repeated hour the first time); with seconds,"
            " a skipped time does not fire and a repeated one fires twice."
        ),
    )
    payload: dict[str, Any] | None = Field(
        default=None,
        description="Sent as the JSON body of each invocation ({} when unset).",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    missed_runs: MissedRuns = Field(
        default=MissedRuns.SKIP,
        description=(
            "Ticks that passed while no dispatcher could fire them (an outage longer than"
            " a minute; a tick late by less than that still fires). Skip: go on from the"
            " next tick. RunOnce: fire the most recent missed tick once on recovery, then"
            " go on. Each tick fires at most once, whatever the number of dispatchers."
        ),
    )


class Backoff(K8sModel):
    model_config = ConfigDict(
        json_schema_extra=_rules(
            (
                "self.initialSeconds <= self.maxSeconds",
                "backoff.initialSeconds must be less than or equal to backoff.maxSeconds",
            )
        )
    )

    initial_seconds: int = Field(default=1, ge=1, le=3600)
    max_seconds: int = Field(default=60, ge=1, le=86400)


class QueueTrigger(K8sModel):
    stream: str = Field(min_length=1, max_length=256)
    max_retries: int = Field(default=5, ge=0, le=100)
    backoff: Backoff = Field(default_factory=Backoff)
    dead_letter_stream: str | None = Field(default=None, min_length=1, max_length=256)
    concurrency: int = Field(
        default=10, ge=1, le=1000, description="Most deliveries of this Trigger in flight at once."
    )


class TriggerSpec(K8sModel):
    """What calls a Function: exactly one of http, schedule or queue."""

    model_config = ConfigDict(
        json_schema_extra=_rules(
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
