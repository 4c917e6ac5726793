"""A Trigger's Ready condition: true only when something will call its
Function.

No Ember component serves a Trigger kind yet: the gateway (http), the
scheduler (schedule) and the dispatcher (queue) arrive in later issues, each
adding its kind to ``SERVED_KINDS``. Until then a Trigger whose Function
exists is still not Ready, and says why, instead of claiming a route, a
schedule or a consumer that does not exist.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ember_operator.status import (
    READY,
    REASON_FUNCTION_NOT_FOUND,
    REASON_KIND_NOT_SERVED,
    REASON_SERVED,
    Condition,
    conditions,
)

TRIGGER_KINDS = ("http", "schedule", "queue")
SERVED_KINDS: frozenset[str] = frozenset()

_WHAT = {"http": "routes", "schedule": "schedules", "queue": "consumes"}


def trigger_kind(spec: Mapping[str, Any]) -> str:
    """The one kind a Trigger's spec sets (the CRD enforces exactly one)."""
    for kind in TRIGGER_KINDS:
        if spec.get(kind) is not None:
            return kind
    raise ValueError("a Trigger sets exactly one of spec.http, spec.schedule or spec.queue")


def trigger_conditions(
    kind: str,
    function: str,
    namespace: str,
    function_found: bool,
    previous: Sequence[Mapping[str, Any]] = (),
    now: str | None = None,
    served: frozenset[str] = SERVED_KINDS,
) -> list[dict[str, Any]]:
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
    else:
        ready = Condition(READY, True, REASON_SERVED, f"{kind} Trigger for Function {function!r}")
    return conditions([ready], previous, now)
