"""The three kinds of Trigger (``spec.http``, ``spec.schedule``,
``spec.queue``) of the ``ember.dev/v1alpha1`` API, and a Function's async
policy (``spec.async``: what calls it asynchronously), with the CEL rules
that refuse a bad one at ``kubectl apply`` time, naming its field.

Split from ``v1alpha1`` (which re-exports them) to keep each module small;
the CRDs are generated from ``v1alpha1`` as before.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import ConfigDict, Field

from ember_operator.api.corev1 import K8sModel, cel_rules


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
        json_schema_extra=cel_rules(
            (
                "self.initialSeconds <= self.maxSeconds",
                "backoff.initialSeconds must be less than or equal to backoff.maxSeconds",
            )
        )
    )

    initial_seconds: int = Field(default=1, ge=1, le=3600)
    max_seconds: int = Field(default=60, ge=1, le=86400)


class AsyncPolicy(K8sModel):
    """How the dispatcher treats a Function's async invocations (``POST
    /async/...``); each unset field takes the install's default (the chart's
    ``dispatcher.*``)."""

    max_retries: int | None = Field(
        default=None, ge=0, le=100, description="Retries after the first attempt."
    )
    backoff: Backoff | None = Field(
        default=None, description="Exponential backoff between attempts (1 s to 60 s if set empty)."
    )
    concurrency: int | None = Field(
        default=None,
        ge=1,
        le=1000,
        description="Most async invocations of this Function in flight per dispatcher replica.",
    )
    max_age_seconds: int | None = Field(
        default=None,
        ge=1,
        le=7 * 86400,
        description="An invocation not yet run this long after its submission (a backlog,"
        " retries) fails instead of running (status failed).",
    )


# Ember's own Redis keys (async streams, records, retries) start with this:
# a queue Trigger naming one would read another namespace's invocations.
RESERVED_STREAM_PREFIX = "ember:"


class QueueTrigger(K8sModel):
    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            (
                f"!self.stream.startsWith('{RESERVED_STREAM_PREFIX}')",
                f"spec.queue.stream must not start with '{RESERVED_STREAM_PREFIX}'"
                " (Ember's own keys)",
            ),
            (
                f"!has(self.deadLetterStream)"
                f" || !self.deadLetterStream.startsWith('{RESERVED_STREAM_PREFIX}')",
                f"spec.queue.deadLetterStream must not start with '{RESERVED_STREAM_PREFIX}'"
                " (Ember's own keys)",
            ),
        )
    )

    stream: str = Field(min_length=1, max_length=256)
    max_retries: int = Field(default=5, ge=0, le=100)
    backoff: Backoff = Field(default_factory=Backoff)
    dead_letter_stream: str | None = Field(default=None, min_length=1, max_length=256)
    concurrency: int = Field(
        default=10, ge=1, le=1000, description="Most deliveries of this Trigger in flight at once."
    )
