"""A Trigger's Ready condition: true only when something will call its
Function.

A kind is served only where a component serves it: the gateway routes http
Triggers when the operator is configured with its URL (the chart sets it
exactly when it installs one), and nothing serves schedule or queue
Triggers yet (the scheduler and the dispatcher arrive in later issues, each
adding its kind in ``served_kinds``). Until then a Trigger whose Function
exists is still not Ready, and says why, instead of claiming a route, a
schedule or a consumer that does not exist.

The order of the checks is the order of what a user must fix: the Function
first, then whether anything serves the kind at all (a path conflict means
nothing while no gateway routes), then the path itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ember_operator.diagnose.http_paths import normalize_path
from ember_operator.status import (
    READY,
    REASON_FUNCTION_NOT_FOUND,
    REASON_KIND_NOT_SERVED,
    REASON_PATH_CONFLICT,
    REASON_ROUTED,
    REASON_SERVED,
    Condition,
    conditions,
)

TRIGGER_KINDS = ("http", "schedule", "queue")
NO_KINDS: frozenset[str] = frozenset()

_WHAT = {"http": "routes", "schedule": "schedules", "queue": "consumes"}


def served_kinds(gateway_url: str | None) -> frozenset[str]:
    """The kinds something calls: http while a gateway is configured."""
    return frozenset({"http"}) if gateway_url else NO_KINDS


def trigger_kind(spec: Mapping[str, Any]) -> str:
    """The one kind a Trigger's spec sets (the CRD enforces exactly one)."""
    for kind in TRIGGER_KINDS:
        if spec.get(kind) is not None:
            return kind
    raise ValueError("a Trigger sets exactly one of spec.http, spec.schedule or spec.queue")


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
) -> list[dict[str, Any]]:
    """``path`` is an http Trigger's path, ``path_conflict`` why another
    Trigger serves it instead (``http_paths.conflict_message``)."""
    if not function_found:
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
            f"Function {function!r} exists, but no Ember component serves {kind} Triggers yet:"
            f" nothing {_WHAT[kind]} this Trigger",
        )
    elif path_conflict is not None:
        ready = Condition(READY, False, REASON_PATH_CONFLICT, path_conflict)
    elif kind == "http":
        where = normalize_path(path or "/")
        ready = Condition(
            READY, True, REASON_ROUTED, f"the gateway routes {where} to Function {function!r}"
        )
    else:
        ready = Condition(READY, True, REASON_SERVED, f"{kind} Trigger for Function {function!r}")
    return conditions([ready], previous, now)
