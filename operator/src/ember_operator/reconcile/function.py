"""Function handlers: observe, render, apply, report.

One reconcile serves create (which includes every Function a starting
operator lists) and update (spec changes): every step is safe to repeat, so
a restart in the middle (say, after the Deployment was created but before
status was written) simply runs it again and converges on one Deployment
and a correct status.

Function status follows the Deployment and its pods through informers on
objects labelled ``ember.dev/function`` (``kube.informer``, outside kopf): no
timers, and a write only when the status actually changes (``report``).
Inline source is parsed before anything is applied, so a syntax error or a
missing handler is on the status at once, even at ``scale.min: 0``, and a
broken edit never replaces pods that work.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

import kopf
from pydantic import ValidationError

from ember_operator import status as st
from ember_operator.api.v1alpha1 import GROUP, VERSION
from ember_operator.diagnose.deployment import summarize_deployment
from ember_operator.diagnose.source import check_source
from ember_operator.kube.client import NameTaken, Refused
from ember_operator.kube.objects import Key, controlled_by
from ember_operator.reconcile.context import Context, context_of
from ember_operator.reconcile.report import report
from ember_operator.reconcile.trigger import refresh_triggers
from ember_operator.render.common import FunctionObject, unchanged
from ember_operator.render.configmap import render_configmap
from ember_operator.render.deployment import desired_replicas, render_deployment
from ember_operator.render.names import configmap_name
from ember_operator.render.service import render_service
from ember_operator.render.signing import render_signing_secret


async def check_references(ctx: Context, fn: FunctionObject) -> st.SpecError | None:
    """Secrets and ConfigMaps the env refers to must exist (unless optional);
    otherwise pods would sit in CreateContainerConfigError where nobody looks."""
    for var in fn.spec.env:
        source = var.value_from
        if source is None:
            continue
        for kind, ref, reason in (
            ("Secret", source.secret_key_ref, st.REASON_SECRET_NOT_FOUND),
            ("ConfigMap", source.config_map_key_ref, st.REASON_CONFIGMAP_NOT_FOUND),
        ):
            if ref is None or ref.optional:
                continue
            obj = await ctx.kube.get(kind, fn.namespace, ref.name)
            if obj is None:
                return st.SpecError(
                    reason,
                    f"env {var.name} refers to {kind} {ref.name!r},"
                    f" which does not exist in namespace {fn.namespace}",
                )
            keys = {*(obj.get("data") or {}), *(obj.get("binaryData") or {})}
            if ref.key not in keys:
                return st.SpecError(
                    reason,
                    f"env {var.name} refers to key {ref.key!r} missing from {kind} {ref.name!r}",
                )
    return None


async def reconcile(ctx: Context, body: Mapping[str, Any], *, fresh: bool) -> None:
    meta = body["metadata"]
    key: Key = (meta["namespace"], meta["name"])
    generation = int(meta.get("generation") or 0)
    state = ctx.state(key)
    report_here = partial(report, ctx, key, generation=generation, previous=body.get("status"))
    async with state.lock, ctx.reconciling:
        try:
            fn = FunctionObject.from_body(body)
        except ValidationError as e:
            # The CRD schema should make this unreachable; say so rather than crash.
            state.spec_error = st.SpecError(st.REASON_INVALID_SPEC, str(e).splitlines()[0])
            await report_here(summarize_deployment(None))
            raise kopf.PermanentError(str(e)) from e

        deployment = None
        state.spec_error = None
        if fn.spec.source is not None:
            state.spec_error = check_source(fn.spec.source, fn.spec.handler)
        if state.spec_error is None:
            state.spec_error = await check_references(ctx, fn)
        if state.spec_error is None:
            try:
                deployment = await apply_children(ctx, fn, fresh=fresh)
            except Refused as e:
                state.spec_error = st.SpecError(st.REASON_INVALID_SPEC, e.message)
            except NameTaken as e:
                state.spec_error = st.SpecError(st.REASON_NAME_CONFLICT, e.message)
        elif not fresh:
            # Not applied: the pods of the last good spec keep serving, and
            # the status counts them.
            deployment = await ctx.kube.get("Deployment", *key)
        await report_here(summarize_deployment(deployment))
    await refresh_triggers(ctx, key, function_found=True)
    error = state.spec_error
    if error is not None and not error.retry:
        raise kopf.PermanentError(error.message)  # only a new spec fixes it
    if error is not None:
        # The user (or another controller) has to act; look again later.
        raise kopf.TemporaryError(error.message, delay=ctx.config.user_error_retry_seconds)


async def apply_children(ctx: Context, fn: FunctionObject, *, fresh: bool) -> dict[str, Any]:
    """ConfigMap, signing Secret, Service, Deployment (in that order: pods
    need the source and the key).

    The signing Secret costs one more create per new Function (only when
    the install has a signing secret). One that signing was turned off
    for is left in place: nothing reads it, it goes with its Function, and
    looking for it would cost every Function a read at every restart."""
    kube = ctx.kube
    configmap = render_configmap(fn)
    if configmap is not None:
        await kube.ensure(configmap, unchanged=unchanged, create_first=fresh)
    elif not fresh:
        # Switched from inline source to an image: drop the old source.
        await kube.delete_owned("ConfigMap", fn.namespace, configmap_name(fn.name), fn.uid)
    secret = render_signing_secret(fn, ctx.config)
    if secret is not None:
        await kube.ensure(secret, unchanged=unchanged, create_first=fresh)
    await kube.ensure(render_service(fn), unchanged=unchanged, create_first=fresh)
    return await kube.ensure(
        render_deployment(fn, ctx.config),
        unchanged=unchanged,
        create_first=fresh,
        replicas=partial(desired_replicas, scale=fn.spec.scale),
    )


@kopf.on.create(GROUP, VERSION, "functions")
async def function_created(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    # "Created" for kopf also means first seen by this operator process
    # (see HandledSpecs); only one without any status is surely new.
    await reconcile(context_of(memo), body, fresh=not body.get("status"))


@kopf.on.update(GROUP, VERSION, "functions", field="spec")
async def function_changed(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    await reconcile(context_of(memo), body, fresh=False)


@kopf.on.event(GROUP, VERSION, "functions")
async def function_event(type: str, namespace: str | None, name: str, memo: Any, **_: Any) -> None:
    """A deleted Function: children go with the owner references; the
    in-memory state is ours to drop, and its Triggers' status must follow."""
    if type == "DELETED":
        ctx = context_of(memo)
        key = (namespace or "", name)
        ctx.forget(key)
        await refresh_triggers(ctx, key, function_found=False)


async def deployment_event(ctx: Context, type: str, body: Mapping[str, Any]) -> None:
    """A Function's Deployment changed (see the informer): report the status
    it implies, or put the Deployment back if it was deleted by hand."""
    owned = controlled_by(body, "Function")
    if owned is None or not ctx.config.watches(owned[0][0]):
        return
    key, owner = owned
    if type == "DELETED":
        # Cascade (the Function is gone) or a manual delete: put it back.
        function = await ctx.kube.get("Function", *key)
        if function is None or function["metadata"].get("deletionTimestamp"):
            ctx.forget(key)
        elif function["metadata"]["uid"] == owner.get("uid"):
            await reconcile(ctx, function, fresh=False)
        return
    state = ctx.functions.get(key)
    if state is None:
        # Not reconciled by this process yet. Its reconcile (kopf runs one
        # for every Function when the operator starts) reports from the live
        # Deployment; answering here too would write every status twice.
        return
    async with state.lock:
        if state.last_status is None:
            return  # that reconcile failed before reporting; kopf retries it
        await report(ctx, key, summarize_deployment(body))
    if state.last_status is None:  # the Function is gone: nothing to remember
        ctx.forget(key)
