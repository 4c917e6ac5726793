"""Trigger handlers: until the gateway consumes Triggers, the operator checks
that the target Function exists and says so in the Trigger's status."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import kopf

from ember_operator import status as st
from ember_operator.api.v1alpha1 import GROUP, VERSION, TriggerSpec
from ember_operator.reconcile.context import context_of


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@kopf.on.create(GROUP, VERSION, "triggers")
@kopf.on.update(GROUP, VERSION, "triggers", field="spec")
async def trigger_changed(
    body: kopf.Body, namespace: str | None, name: str, memo: Any, **_: Any
) -> None:
    assert namespace is not None  # Triggers are namespaced
    ctx = context_of(memo)
    spec = TriggerSpec.model_validate(dict(body.get("spec") or {}))
    function = await ctx.kube.get("Function", namespace, spec.function)
    found = function is not None
    previous = {c.get("type"): c for c in (body.get("status") or {}).get("conditions") or []}
    text = "True" if found else "False"
    before = previous.get(st.READY) or {}
    condition = {
        "type": st.READY,
        "status": text,
        "reason": st.REASON_FUNCTION_FOUND if found else st.REASON_FUNCTION_NOT_FOUND,
        "message": f"Function {spec.function!r}"
        + (" found" if found else f" does not exist in namespace {namespace}"),
        "lastTransitionTime": before.get("lastTransitionTime")
        if before.get("status") == text
        else _now(),
    }
    await ctx.kube.patch_status(
        "Trigger",
        namespace,
        name,
        {"conditions": [condition], "observedGeneration": body["metadata"].get("generation")},
    )
    if not found:
        raise kopf.TemporaryError(condition["message"], delay=ctx.config.user_error_retry_seconds)


@kopf.on.event(GROUP, VERSION, "triggers")
async def trigger_event(type: str, namespace: str | None, name: str, memo: Any, **_: Any) -> None:
    """Drop what kopf remembers of a deleted Trigger (see HandledSpecs)."""
    if type == "DELETED":
        context_of(memo).handled.forget("Trigger", namespace or "", name)
