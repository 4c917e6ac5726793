"""Operator start and stop: kopf settings, the API connection, the informers.

Kopf remembers the last spec it handled in memory (``HandledSpecs``), not
in an annotation on every object: that annotation cost one more write per
Function change (a PATCH of the whole spec, source included, fanned out to
every watcher), and a new operator process needs no memory anyway, because
every handler is idempotent. Retries still record their progress in
``ember.dev/*`` annotations. Only warnings and errors become Kubernetes
Events (an Event per successful handler run would cost one extra API call
per object). Deployments and pods are followed outside kopf, by informers
(``kube.informer``).

The Config is the one ``python -m ember_operator`` parsed, passed in kopf's
memo; ``kopf run -m ember_operator.reconcile`` (the tests) has none, and
the environment is read here instead, once either way.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

import kopf

from ember_operator.autoscaler.setup import RunningAutoscaler
from ember_operator.config import Config
from ember_operator.kube.client import Kube
from ember_operator.kube.informer import Handler, Informer
from ember_operator.kube.resources import RESOURCES
from ember_operator.reconcile.context import Context, RetryProgress, context_of
from ember_operator.reconcile.function import deployment_event
from ember_operator.reconcile.report import pod_event
from ember_operator.render.labels import FUNCTION_LABEL

PREFIX = "ember.dev"
CONFIG_MEMO = "ember_config"  # where __main__ puts its Config
AUTOSCALER_MEMO = "ember_autoscaler"


@kopf.on.startup()
async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    config = memo.get(CONFIG_MEMO)
    if not isinstance(config, Config):
        config = Config.from_env()
    settings.persistence.progress_storage = RetryProgress(prefix=PREFIX)
    settings.persistence.finalizer = f"{PREFIX}/finalizer"
    settings.posting.level = logging.INFO if config.post_info_events else logging.WARNING
    settings.posting.reporting_component = "ember-operator"
    memo.ember = ctx = Context(config=config, kube=await Kube.connect())
    # kopf's diff base is the Context's, so forgetting a Function forgets both.
    settings.persistence.diffbase_storage = ctx.handled
    # The autoscaler ticks in this process and reads Deployments off the
    # operator's own watch (EMBER_AUTOSCALER=0 turns it off).
    autoscaler = RunningAutoscaler(ctx.kube, config) if config.autoscaler else None
    memo[AUTOSCALER_MEMO] = autoscaler
    for kind, handler in (("Deployment", deployment_event), ("Pod", pod_event)):
        handle: Handler = partial(handler, ctx)
        if autoscaler is not None and kind == "Deployment":
            handle = autoscaler.deployments.tee(handle)
        informer = Informer(
            ctx.kube,
            RESOURCES[kind],
            handle,
            namespaces=config.plain_namespaces,
            accepts_namespace=None if config.plain_namespaces is not None else config.watches,
            label_selector=FUNCTION_LABEL,
        )
        ctx.informers.append(informer)
        informer.start()
    if autoscaler is not None:
        autoscaler.start()
        await autoscaler.start_exporter()


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    autoscaler = memo.get(AUTOSCALER_MEMO)
    if isinstance(autoscaler, RunningAutoscaler):
        await autoscaler.stop()
    if getattr(memo, "ember", None) is not None:
        ctx = context_of(memo)
        for informer in ctx.informers:
            await informer.stop()
        await ctx.kube.close()
