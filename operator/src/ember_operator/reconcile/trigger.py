"""Trigger handlers: say whether anything will call the Trigger's Function.

``diagnose.trigger`` decides: the gateway serves HTTP Triggers when one is
configured, the dispatcher schedule and queue Triggers when one runs, a
schedule the scheduler cannot read is ``InvalidSchedule``, and an HTTP
Trigger that lost its path to an older one says so (``PathConflict``). The status follows
the Function: the Function's own handlers call ``refresh_triggers`` when it
is created or deleted. It follows rival Triggers too: a Trigger whose path
claim changes (created, moved, deleted) re-reports the Triggers whose
conflict that moved. Both work from what is remembered in memory (no list
call, no polling), and every write goes through ``report_trigger``, which
writes only what changed. A per-Trigger lock orders these reports against
the Trigger's own handler, so a stale "not found" never overwrites a newer
"found"; a handler takes another Trigger's lock only after releasing its
own, so two rivals never wait on each other.

Which Trigger owns a path depends on every claim, so the claims are known
before the first Trigger reports: kopf's index ``http_claims`` holds every
HTTP Trigger's claim in the namespaces kopf watches, and kopf runs no
handler until its indexes hold the whole first listing. The first handler
seeds the ``PathIndex`` from it; from then on each event updates it. A
restarted operator, which kopf hands the Triggers one by one in list
order, thus never reports a newer Trigger Routed or an older one
``PathConflict`` on the way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import kopf
from pydantic import ValidationError

from ember_operator.api.v1alpha1 import GROUP, VERSION, TriggerSpec
from ember_operator.diagnose.http_paths import HttpClaim
from ember_operator.diagnose.trigger import (
    served_kinds,
    spec_problem,
    trigger_conditions,
    trigger_kind,
    trigger_url,
)
from ember_operator.kube.objects import Key
from ember_operator.reconcile.context import Context, TriggerState, context_of
from ember_operator.status import same_conditions


async def report_trigger(
    ctx: Context, key: Key, state: TriggerState, *, force: bool = False
) -> None:
    """Write the Trigger's status if it changed (or ``force``: a new
    generation to acknowledge). Call with its lock held."""
    gateway = ctx.config.gateway_url
    conditions = trigger_conditions(
        state.kind,
        state.function,
        key[0],
        bool(state.found),
        state.conditions,
        served=served_kinds(gateway, ctx.config.dispatcher_enabled),
        path=state.path,
        path_conflict=ctx.paths.conflict(key),
        problem=state.problem,
    )
    # A URL only where the Trigger is served: a lost path answers for another.
    url = trigger_url(gateway, state.path) if conditions[0]["status"] == "True" else None
    if not force and same_conditions(conditions, state.conditions) and url == state.url:
        return
    status: dict[str, Any] = {"conditions": conditions, "url": url}  # None removes a stale one
    if state.generation is not None:
        status["observedGeneration"] = state.generation
    if await ctx.kube.patch_status("Trigger", key[0], key[1], status):
        state.conditions, state.url = conditions, url
    else:
        ctx.forget_trigger(key, path_too=False)  # gone; its DELETED event frees the path


async def refresh_triggers(ctx: Context, function: Key, *, function_found: bool) -> None:
    """The Function was created or deleted: its Triggers' status follows."""
    for key, state in ctx.triggers_of(*function):
        async with state.lock:
            state.found = function_found
            await report_trigger(ctx, key, state)


async def report_rivals(ctx: Context, keys: Iterable[Key]) -> None:
    """Triggers whose path conflict moved: report them again (each with
    its own lock; one not yet handled by this process reports itself)."""
    for key in sorted(keys):
        state = ctx.triggers.get(key)
        if state is None or state.found is None:
            continue
        async with state.lock:
            await report_trigger(ctx, key, state)


CLAIMS = "claims"  # the one key of the http_claims index


@kopf.index(GROUP, VERSION, "triggers")
def http_claims(
    body: kopf.Body, namespace: str | None, name: str, **_: Any
) -> dict[str, HttpClaim]:
    """Every HTTP Trigger's claim on a path, kept by kopf ({} for other kinds)."""
    http = (body.get("spec") or {}).get("http") or {}
    path = http.get("path") if isinstance(http, Mapping) else None
    if namespace is None or not isinstance(path, str):
        return {}
    created = str((body.get("metadata") or {}).get("creationTimestamp") or "")
    return {CLAIMS: HttpClaim(namespace, name, path, created)}


def seed_paths(ctx: Context, index: Mapping[str, Iterable[HttpClaim]] | None) -> None:
    """Before the first report: every claim kopf's index holds."""
    if ctx.paths_seeded or index is None:
        return
    ctx.paths_seeded = True
    ctx.paths.seed(index.get(CLAIMS, ()))


@kopf.on.create(GROUP, VERSION, "triggers")
@kopf.on.update(GROUP, VERSION, "triggers", field="spec")
async def trigger_changed(
    body: kopf.Body,
    namespace: str | None,
    name: str,
    memo: Any,
    http_claims: Mapping[str, Iterable[HttpClaim]] | None = None,
    **_: Any,
) -> None:
    if namespace is None:
        raise kopf.PermanentError("a Trigger without a namespace: the CRD is namespaced")
    ctx = context_of(memo)
    seed_paths(ctx, http_claims)
    raw = dict(body.get("spec") or {})
    try:
        spec = TriggerSpec.model_validate(raw)
        kind = trigger_kind(raw)
    except (ValidationError, ValueError) as e:
        # The CRD schema should make this unreachable; say so rather than retry.
        raise kopf.PermanentError(f"invalid Trigger spec: {e}") from e
    key = (namespace, name)
    state = ctx.trigger(key, spec.function, kind)
    meta = body["metadata"]
    path = spec.http.path if spec.http is not None else None
    rivals = ctx.claim_path(key, path, str(meta.get("creationTimestamp") or ""))
    stored = body.get("status") or {}
    async with state.lock:
        state.generation = meta.get("generation")
        state.path = path
        state.problem = spec_problem(raw)
        if not state.conditions:  # first seen by this process
            state.conditions = [dict(c) for c in stored.get("conditions") or []]
            state.url = stored.get("url")
        function = await ctx.kube.get("Function", namespace, spec.function)
        state.found = function is not None and not function["metadata"].get("deletionTimestamp")
        new_generation = stored.get("observedGeneration") != state.generation
        await report_trigger(ctx, key, state, force=new_generation)
    await report_rivals(ctx, rivals)


@kopf.on.event(GROUP, VERSION, "triggers")
async def trigger_event(
    type: str,
    namespace: str | None,
    name: str,
    memo: Any,
    http_claims: Mapping[str, Iterable[HttpClaim]] | None = None,
    **_: Any,
) -> None:
    """Drop what is remembered of a deleted Trigger (see HandledSpecs), and
    hand its path to the Trigger next in line."""
    if type == "DELETED":
        ctx = context_of(memo)
        seed_paths(ctx, http_claims)
        await report_rivals(ctx, ctx.forget_trigger((namespace or "", name)))
