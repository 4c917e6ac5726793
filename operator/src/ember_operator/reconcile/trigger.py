"""Trigger handlers: say whether anything will call the Trigger's Function.

No component serves a Trigger kind yet (``diagnose.trigger``), so a
Trigger is Ready=False with the reason why: its Function does not exist, or
its kind is not served. The status follows the Function: the Function's own
handlers call ``refresh_triggers`` when it is created or deleted, from the
Triggers remembered in memory (no list call, no polling). A per-Trigger
lock orders that refresh against the Trigger's own handler, so a stale
"not found" never overwrites a newer "found".
"""

from __future__ import annotations

from typing import Any

import kopf
from pydantic import ValidationError

from ember_operator.api.v1alpha1 import GROUP, VERSION, TriggerSpec
from ember_operator.diagnose.trigger import trigger_conditions, trigger_kind
from ember_operator.kube.objects import Key
from ember_operator.reconcile.context import Context, TriggerState, context_of
from ember_operator.status import same_conditions


async def report_trigger(
    ctx: Context, key: Key, state: TriggerState, found: bool, *, force: bool = False
) -> None:
    """Write the Trigger's status if it changed (or ``force``: a new
    generation to acknowledge). Call with its lock held."""
    conditions = trigger_conditions(state.kind, state.function, key[0], found, state.conditions)
    if not force and same_conditions(conditions, state.conditions):
        return
    status: dict[str, Any] = {"conditions": conditions}
    if state.generation is not None:
        status["observedGeneration"] = state.generation
    if await ctx.kube.patch_status("Trigger", key[0], key[1], status):
        state.conditions = conditions
    else:
        ctx.forget_trigger(key)  # the Trigger is gone


async def refresh_triggers(ctx: Context, function: Key, *, function_found: bool) -> None:
    """The Function was created or deleted: its Triggers' status follows."""
    for key, state in ctx.triggers_of(*function):
        async with state.lock:
            await report_trigger(ctx, key, state, function_found)


@kopf.on.create(GROUP, VERSION, "triggers")
@kopf.on.update(GROUP, VERSION, "triggers", field="spec")
async def trigger_changed(
    body: kopf.Body, namespace: str | None, name: str, memo: Any, **_: Any
) -> None:
    if namespace is None:
        raise kopf.PermanentError("a Trigger without a namespace: the CRD is namespaced")
    ctx = context_of(memo)
    raw = dict(body.get("spec") or {})
    try:
        spec = TriggerSpec.model_validate(raw)
        kind = trigger_kind(raw)
    except (ValidationError, ValueError) as e:
        # The CRD schema should make this unreachable; say so rather than retry.
        raise kopf.PermanentError(f"invalid Trigger spec: {e}") from e
    key = (namespace, name)
    state = ctx.trigger(key, spec.function, kind)
    stored = body.get("status") or {}
    async with state.lock:
        state.generation = body["metadata"].get("generation")
        if not state.conditions:  # first seen by this process
            state.conditions = [dict(c) for c in stored.get("conditions") or []]
        function = await ctx.kube.get("Function", namespace, spec.function)
        found = function is not None and not function["metadata"].get("deletionTimestamp")
        new_generation = stored.get("observedGeneration") != state.generation
        await report_trigger(ctx, key, state, found, force=new_generation)


@kopf.on.event(GROUP, VERSION, "triggers")
async def trigger_event(type: str, namespace: str | None, name: str, memo: Any, **_: Any) -> None:
    """Drop what is remembered of a deleted Trigger (see HandledSpecs)."""
    if type == "DELETED":
        context_of(memo).forget_trigger((namespace or "", name))
