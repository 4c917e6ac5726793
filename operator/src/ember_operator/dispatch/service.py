"""The dispatcher process (``python -m ember_operator.dispatch``): the
Redis clients, the cluster watches, the dispatcher, the cron scheduler,
the admin port, and the order of a graceful stop.

SIGTERM: readiness turns 503, every reader stops, invocations in flight
(and messages already read) finish within ``EMBER_ASYNC_DRAIN_SECONDS``,
and whatever is left stays pending in Redis, where another replica claims
it after the visibility timeout. Nothing is acknowledged that did not
finish.
"""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

from ember_operator.admin_port import AdminEndpoint
from ember_operator.dispatch.cluster import ClusterSources
from ember_operator.dispatch.dispatcher import Dispatcher
from ember_operator.dispatch.schedule import Scheduler
from ember_operator.dispatch.settings import DispatchSettings
from ember_operator.dispatch.store import Invocations
from ember_operator.kube.client import Kube
from ember_runtime import logs
from ember_runtime.http.connections import Connections
from ember_runtime.http.limits import HttpLimits
from ember_runtime.http.protocol import HttpConn


async def serve(settings: DispatchSettings) -> int:
    loop = asyncio.get_running_loop()
    logs.write_in_background()
    dispatcher = Dispatcher(settings)
    # schedule Triggers: every replica fires every tick; the store's
    # idempotency keys make each tick one invocation (see schedule).
    store = Invocations(dispatcher.redis, settings.retention_seconds)
    scheduler = Scheduler(store, dispatcher.redis)
    kube: Kube | None = None
    cluster: ClusterSources | None = None
    if settings.feed_file:
        text = Path(settings.feed_file).read_text()  # noqa: ASYNC240 (once, at start)
        for obj in json.loads(text):
            dispatcher.sources.apply(str(obj.get("kind")), "ADDED", obj)
            scheduler.apply(str(obj.get("kind")), "ADDED", obj)
        scheduler.functions_listed()
    else:
        kube = await Kube.connect()
        cluster = ClusterSources(
            kube, dispatcher.sources, settings.namespaces, also=(scheduler.apply,)
        )
    stopping = asyncio.Event()

    def readiness() -> str | None:
        if stopping.is_set():
            return "draining"
        if cluster is not None and not cluster.synced:
            return "syncing"
        if not dispatcher.redis_ok:
            return "redis unreachable"
        return None

    admin = AdminEndpoint(dispatcher.metrics.render, readiness)
    conns = Connections(HttpLimits(max_connections=64, idle_timeout=30.0))
    server = await loop.create_server(
        lambda: HttpConn(admin, conns), settings.host, settings.metrics_port, reuse_address=True
    )
    conns.start()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    if cluster is not None:
        cluster.start()
    await dispatcher.start()
    scheduling = loop.create_task(scheduler.run())
    listed = loop.create_task(_when_listed(cluster, scheduler))
    logs.emit(
        "info",
        "dispatcher ready",
        consumer=dispatcher.consumer,
        gateway=settings.gateway_url,
        metrics_port=settings.metrics_port,
        feed=settings.feed_file or "cluster",
    )
    await stopping.wait()
    logs.emit("info", "draining", inflight=dispatcher.inflight)
    for task in (scheduling, listed):
        task.cancel()
    if cluster is not None:
        await cluster.stop()
    await dispatcher.stop()
    server.close()
    conns.stop()
    if kube is not None:
        await kube.close()
    logs.emit("info", "stopped")
    logs.flush()
    return 0


async def _when_listed(cluster: ClusterSources | None, scheduler: Scheduler) -> None:
    """Tell the scheduler once every Function is known (a schedule of a
    Function that does not exist then skips its ticks)."""
    while cluster is not None and not cluster.synced:  # noqa: ASYNC110 (a poll)
        await asyncio.sleep(0.2)
    scheduler.functions_listed()
