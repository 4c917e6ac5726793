"""Operator start and stop: kopf settings, the API connection, the config.

Kopf remembers the last spec it handled in memory (``HandledSpecs``), not
in an annotation on every object: that annotation cost one more write per
Function change (a PATCH of the whole spec, source included, fanned out to
every watcher), and a new operator process needs no memory anyway, because
every handler is idempotent. Retries still record their progress in
``ember.dev/*`` annotations. Only warnings and errors become Kubernetes
Events (an Event per successful handler run would cost one extra API call
per object). Deployments are followed outside kopf (``follow``).
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from ember_operator.config import Config
from ember_operator.kube import Kube
from ember_operator.reconcile.context import Context, RetryProgress, context_of
from ember_operator.reconcile.follow import Follower
from ember_operator.reconcile.function import deployment_event

PREFIX = "ember.dev"


@kopf.on.startup()
async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    config = Config.from_env()
    settings.persistence.progress_storage = RetryProgress(prefix=PREFIX)
    settings.persistence.finalizer = f"{PREFIX}/finalizer"
    settings.posting.level = logging.INFO if config.post_info_events else logging.WARNING
    settings.posting.reporting_component = "ember-operator"
    memo.ember = ctx = Context(config=config, kube=await Kube.connect())
    # kopf's diff base is the Context's, so forgetting a Function forgets both.
    settings.persistence.diffbase_storage = ctx.handled
    ctx.follower = Follower(ctx, deployment_event)
    ctx.follower.start()


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    if getattr(memo, "ember", None) is not None:
        ctx = context_of(memo)
        if ctx.follower is not None:
            await ctx.follower.stop()
        await ctx.kube.close()
