"""A Trigger's Ready condition: true only when something will call its
Function.

A kind is served only where a component serves it, and the operator is
told which are installed: the gateway routes http Triggers when the
operator is configured with its URL (``EMBER_GATEWAY_URL``; the chart sets
it exactly when it installs one), and the dispatcher fires schedule
Triggers and consumes queue Triggers when the chart says it runs one
(``EMBER_DISPATCHER_ENABLED``). Without them a Trigger whose Function
exists is still not Ready, and says why, instead of claiming a route, a
schedule or a consumer that does not exist.

The order of the checks is the order of what a user must fix: the Trigger
itself first (a schedule the scheduler cannot read, checked with the
scheduler's own parser), then the Function, then whether anything serves
the kind at all (a path conflict means nothing while no gateway routes),
then the path itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ember_operator.diagnose.http_paths import normalize_path
from ember_operator.dispatch.cron import check_schedule
from ember_operator.status import (
    READY,
    REASON_CONSUMING,
    REASON_FUNCTION_NOT_FOUND,
    REASON_INVALID_SCHEDULE,
    REASON_KIND_NOT_SERVED,
    REASON_PATH_CONFLICT,
    REASON_ROUTED,
    REASON_SCHEDULED,
    Condition,
    conditions,
)

TRIGGER_KINDS = ("http", "schedule", "queue")
NO_KINDS: frozenset[str] = frozenset()

_WHAT = {"http": "routes", "schedule": "schedules", "queue": "consumes"}
_WHO = {
    "http": "no gateway is configured (the operator's EMBER_GATEWAY_URL is unset)",
    "schedule": "no dispatcher runs (the operator's EMBER_DISPATCHER_ENABLED is off)",
    "queue": "no dispatcher runs (the operator's EMBER_DISPATCHER_ENABLED is off)",
}


def served_kinds(gateway_url: str | None, dispatcher_enabled: bool = False) -> frozenset[str]:
    """The kinds something calls: http while a gateway is configured,
    schedule and queue while a dispatcher runs."""
    kinds = {"http"} if gateway_url else set()
    if dispatcher_enabled:
        kinds |= {"schedule", "queue"}
    return frozenset(kinds)


def trigger_kind(spec: Mapping[str, Any]) -> str:
    """The one kind a Trigger's spec sets (the CRD enforces exactly one)."""
    for kind in TRIGGER_KINDS:
        if spec.get(kind) is not None:
            return kind
    raise ValueError("a Trigger sets exactly one of spec.http, spec.schedule or spec.queue")


def spec_problem(spec: Mapping[str, Any]) -> str | None:
    """What in a Trigger's spec stops it from ever being served, beyond
    what the CRD schema refuses: a cron expression or time zone the
    scheduler's parser rejects. The message names the field."""
    schedule = spec.get("schedule")
    if not isinstance(schedule, Mapping):
        return None
    error = check_schedule(str(schedule.get("cron") or ""), str(schedule.get("timezone") or "UTC"))
    return None if error is None else str(error)


def trigger_url(gateway_url: str | None, path: str | None) -> str | None:
    """Where the gateway answers an HTTP Trigger; None for other kinds or
    without a gateway."""
    if not gateway_url or path is None:
        return None
    return gateway_url.rstrip("/") + normalize_path(path)


def trigger_conditions(
    kind: str,
    function: str,
    namespace: str,
    function_found: bool,
    previous: Sequence[Mapping[str, Any]] = (),
    now: str | None = None,
    served: frozenset[str] = NO_KINDS,
    *,
    path: str | None = None,
    path_conflict: str | None = None,
    problem: str | None = None,
) -> list[dict[str, Any]]:
    """``path`` is an http Trigger's path, ``path_conflict`` why another
    Trigger serves it instead (``http_paths.conflict_message``), ``problem``
    what ``spec_problem`` found."""
    if problem is not None:
        ready = Condition(READY, False, REASON_INVALID_SCHEDULE, problem)
    elif not function_found:
        ready = Condition(
            READY,
            False,
            REASON_FUNCTION_NOT_FOUND,
            f"Function {function!r} does not exist in namespace {namespace}",
        )
    elif kind not in served:
        ready = Condition(
            READY,
            False,
            REASON_KIND_NOT_SERVED,
            f"Function {function!r} exists, but nothing serves {kind} Triggers in this"
            f" install: {_WHO[kind]}, so nothing {_WHAT[kind]} this Trigger",
        )
    elif path_conflict is not None:
        ready = Condition(READY, False, REASON_PATH_CONFLICT, path_conflict)
    elif kind == "http":
        where = normalize_path(path or "/")
        ready = Condition(
            READY, True, REASON_ROUTED, f"the gateway routes {where} to Function {function!r}"
        )
    elif kind == "schedule":
        ready = Condition(
            READY,
            True,
            REASON_SCHEDULED,
            f"the dispatcher fires Function {function!r} at each tick of spec.schedule.cron",
        )
    else:
        ready = Condition(
            READY,
            True,
            REASON_CONSUMING,
            f"the dispatcher delivers spec.queue.stream's messages to Function {function!r}",
        )
    return conditions([ready], previous, now)
