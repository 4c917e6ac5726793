"""Writing a Function's status, from whichever event brought news.

Three writers meet here: the Function's reconcile (a new spec), its
Deployment (replicas come and go) and its pods (why they cannot start).
Each takes the Function's lock and computes the whole status from what the
state remembers, so the last write is always computed from the freshest of
everything, and a write happens only when something a user would see
changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ember_operator.config import Config
from ember_operator.diagnose.deployment import Summary
from ember_operator.diagnose.function import function_conditions
from ember_operator.diagnose.pods import first_problem, pod_problem
from ember_operator.kube.objects import Key
from ember_operator.reconcile.context import Context
from ember_operator.render.labels import FUNCTION_LABEL
from ember_operator.status import same_conditions


def function_url(config: Config, key: Key) -> str | None:
    """Where the gateway serves the Function; None while no gateway is configured."""
    if not config.gateway_url:
        return None
    return f"{config.gateway_url}/fn/{key[0]}/{key[1]}"


async def report(
    ctx: Context,
    key: Key,
    summary: Summary,
    *,
    generation: int | None = None,
    previous: Mapping[str, Any] | None = None,
) -> None:
    """Write status if it changed. Call with the Function's lock held."""
    state = ctx.state(key)
    state.summary = summary
    last = state.last_status if state.last_status is not None else dict(previous or {})
    conditions = function_conditions(
        summary,
        state.spec_error,
        last.get("conditions") or (),
        pod_problem=first_problem(state.pod_problems),
    )
    new: dict[str, Any] = {
        "conditions": conditions,
        "replicas": summary.replicas,
        "readyReplicas": summary.ready_replicas,
        "url": function_url(ctx.config, key),  # None removes a stale one
    }
    if generation is not None:
        new["observedGeneration"] = generation
    unchanged = same_conditions(conditions, last.get("conditions") or ()) and all(
        last.get(k) == v for k, v in new.items() if k != "conditions"
    )
    if not unchanged and not await ctx.kube.patch_status("Function", key[0], key[1], new):
        state.last_status = None  # the Function is gone
        return
    # Remembered even when unchanged: it is what the Deployment watch compares
    # with, and the sign that this process has reported this Function.
    state.last_status = {**last, **new}


async def pod_event(ctx: Context, type: str, pod: Mapping[str, Any]) -> None:
    """A Function's pod changed (see the pod informer): remember why it
    cannot start (or that it no longer fails) and report if that changed."""
    meta = pod.get("metadata") or {}
    function = (meta.get("labels") or {}).get(FUNCTION_LABEL)
    if not function:
        return
    key: Key = (str(meta.get("namespace")), str(function))
    name = str(meta.get("name"))
    problem = None if type == "DELETED" else pod_problem(pod)
    state = ctx.functions.get(key)
    if state is None:
        if problem is None:
            return
        # Kept for the Function's first reconcile, which reports it.
        state = ctx.state(key)
    async with state.lock:
        if problem is None:
            if state.pod_problems.pop(name, None) is None:
                return
        elif state.pod_problems.get(name) == problem:
            return
        else:
            state.pod_problems[name] = problem
        if state.last_status is None or state.summary is None:
            return  # not reported by this process yet; its reconcile will
        await report(ctx, key, state.summary)
    if state.last_status is None:  # the Function is gone: nothing to remember
        ctx.forget(key)
