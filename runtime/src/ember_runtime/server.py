"""Start serving: the listening socket, the worker pool or the async handler,
signals, and the order in which a pod becomes ready and then drains.

The pieces live elsewhere: the HTTP core in ``http/``, admission and the
control endpoints in ``app``, the workers in ``pool``. This module only
wires them for one process and sizes what depends on the machine (the
connection cap against the descriptor limit).
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Sequence
from socket import socket

from ember_runtime import logs
from ember_runtime.app import App
from ember_runtime.config import Settings
from ember_runtime.contract import Handler
from ember_runtime.http.connections import Connections
from ember_runtime.http.limits import HttpLimits, connection_budget
from ember_runtime.http.protocol import HttpConn
from ember_runtime.metrics import Metrics
from ember_runtime.pool import WorkerPool

# Descriptors kept for everything but client connections: the listening
# socket, logs, and per worker two pipes and a pidfd (plus spawns in flight).
_RESERVED_FDS = 64
_FDS_PER_WORKER = 6


def http_limits(settings: Settings) -> HttpLimits:
    """The HTTP core's limits, with the connection cap kept under the
    process's descriptor limit less what the workers' pipes need."""
    reserved = _RESERVED_FDS + _FDS_PER_WORKER * settings.pool_size
    return HttpLimits.from_settings(settings, connection_budget=connection_budget(reserved))


async def serve(
    settings: Settings,
    metrics: Metrics,
    pool_ctrl: socket | None,
    handler: Handler | None,
    requested: Sequence[tuple[int, int]] = (),
) -> int:
    """Serve until SIGTERM/SIGINT, drain, and return the exit status.

    With ``pool_ctrl`` (the zygote's control socket) sync calls go to
    workers; otherwise ``handler`` is async and runs on this loop.
    """
    loop = asyncio.get_running_loop()
    logs.write_in_background()
    conns = Connections(http_limits(settings))
    app = App(settings, metrics, conns, handler)
    if pool_ctrl is not None:
        app.pool = WorkerPool(pool_ctrl, settings.pool_size, settings.worker_max_calls)
        pool_ready = loop.create_task(app.pool.start(requested=requested))
    server = await loop.create_server(
        lambda: HttpConn(app, conns), settings.host, settings.port, reuse_address=True, backlog=1024
    )
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, app.begin_drain, server)
    conns.start()
    if pool_ctrl is not None:
        stopping = loop.create_task(app.stopped.wait())
        await asyncio.wait([pool_ready, stopping], return_when=asyncio.FIRST_COMPLETED)
        if not pool_ready.done():
            pool_ready.cancel()
            if app.pool is not None:
                app.pool.close()
            return 0
        stopping.cancel()
        if pool_ready.exception() is not None:
            logs.emit("error", "workers did not start", function=settings.function)
            if app.pool is not None:
                app.pool.close()
            return 1
    app.ready = True
    app.sweep()
    port = server.sockets[0].getsockname()[1] if server.sockets else settings.port
    logs.emit(
        "info",
        "ready",
        function=settings.function,
        port=port,
        boot_seconds=round(time.time() - metrics.started_at, 4),
        workers=settings.pool_size if pool_ctrl is not None else 0,
        mode="workers" if pool_ctrl is not None else "event-loop",
        max_connections=conns.limits.max_connections,
    )
    await app.stopped.wait()
    conns.stop()
    if app.pool is not None:
        app.pool.close()
    logs.emit("info", "stopped", function=settings.function, requests_total=metrics.requests_total)
    logs.flush()
    return 0
