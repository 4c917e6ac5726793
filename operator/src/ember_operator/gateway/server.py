"""Wiring: the client port and the admin port on the HTTP core, the proxy,
the activator, the feed, and the order of a graceful stop.

``Gateway`` runs in any event loop, so integration tests and benchmarks
start it in-process on loopback and drive its ``feed`` themselves;
``serve`` adds what only the real process needs (the cluster watches,
signals, the descriptor limit).

Stopping (SIGTERM): readiness turns 503 and answers start closing their
connections at once; for ``drain_seconds`` new connections are still
served while the Service drops this replica; then the port closes and the
gateway waits for calls in flight and held (bounded by the longest
deadline), so a rolling update or a deleted replica fails no request.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ember_operator.admin_port import AdminEndpoint
from ember_operator.gateway.activator import Activator, NoScaler, Scaler
from ember_operator.gateway.async_api import AsyncApi
from ember_operator.gateway.config import GatewaySettings
from ember_operator.gateway.feed import Feed
from ember_operator.gateway.metrics import GatewayMetrics
from ember_operator.gateway.proxy import Proxy
from ember_operator.gateway.signer import Signer
from ember_runtime import logs
from ember_runtime.http.connections import Connections
from ember_runtime.http.limits import HttpLimits
from ember_runtime.http.protocol import HttpConn


class Gateway:
    def __init__(
        self,
        settings: GatewaySettings,
        scaler: Scaler | None = None,
        synced: Callable[[], bool] = lambda: True,
    ) -> None:
        self.settings = settings
        self.metrics = GatewayMetrics()
        self.activator = Activator(
            scaler or NoScaler(), settings.probe_interval_seconds, settings.stream_threshold_bytes
        )
        self.proxy = Proxy(
            settings, self.metrics, self.activator, Signer.from_file(settings.signing_secret_file)
        )
        self.feed = Feed(self.proxy)
        self.async_api: AsyncApi | None = None
        if settings.redis_url:
            self.async_api = self.proxy.async_endpoint = async_api(settings, self.proxy)
        self.synced = synced
        self.conns = Connections(settings.http_limits())
        self.admin_conns = Connections(HttpLimits(max_connections=64, idle_timeout=30.0))
        self.servers: list[asyncio.AbstractServer] = []
        self.port = settings.port
        self.admin_port = settings.admin_port

    def readiness(self) -> str | None:
        if self.proxy.draining:
            return "draining"
        if not self.synced():
            return "syncing"
        return None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        s = self.settings
        proxy = self.proxy
        metrics = self.metrics
        admin = AdminEndpoint(lambda: metrics.prometheus(proxy.stats), self.readiness, proxy.stats)
        server = await loop.create_server(
            lambda: HttpConn(proxy, self.conns), s.host, s.port, reuse_address=True, backlog=4096
        )
        admin_server = await loop.create_server(
            lambda: HttpConn(admin, self.admin_conns), s.host, s.admin_port, reuse_address=True
        )
        self.servers = [server, admin_server]
        self.port = _port_of(server, s.port)
        self.admin_port = _port_of(admin_server, s.admin_port)
        self.conns.start()
        self.admin_conns.start()
        proxy.start()

    async def drain(self) -> None:
        """Stop taking traffic and finish what was taken."""
        proxy = self.proxy
        proxy.draining = True
        self.conns.draining = True
        await asyncio.sleep(self.settings.drain_seconds)
        if self.servers:
            self.servers[0].close()
        self.conns.close_idle()
        longest = max((b.timeout_seconds for b in proxy.backends.values()), default=30.0)
        deadline = asyncio.get_running_loop().time() + max(
            longest + self.settings.timeout_margin_seconds, self.settings.activation_timeout_seconds
        )
        loop = asyncio.get_running_loop()
        while proxy.inflight or any(b.held for b in proxy.backends.values()):
            if loop.time() >= deadline:
                break
            await asyncio.sleep(0.05)
        self.conns.close_idle()

    async def stop(self) -> None:
        self.proxy.stop()
        self.conns.stop()
        self.admin_conns.stop()
        await self.activator.stop()
        if self.async_api is not None:
            await self.async_api.stop()
        for server in self.servers:
            server.close()
        for conn in list(self.conns.open):
            conn.close_when_idle()

    async def __aenter__(self) -> Gateway:
        await self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()


def async_api(settings: GatewaySettings, proxy: Proxy) -> AsyncApi:
    """The ``/async/`` API over the Redis ``settings`` name (see async_api)."""
    from ember_operator.dispatch.connect import open_redis
    from ember_operator.dispatch.store import Invocations

    redis = open_redis(settings.redis_url or "", settings.redis_password)
    return AsyncApi(
        Invocations(redis, settings.async_retention_seconds),
        lambda key: key in proxy.backends,
        max_body=settings.async_max_body_bytes,
        callback_hosts=settings.async_callback_hosts,
        draining=lambda: proxy.draining,
        access_log=settings.access_log,
    )


def _port_of(server: asyncio.AbstractServer, default: int) -> int:
    sockets = getattr(server, "sockets", None)
    return int(sockets[0].getsockname()[1]) if sockets else default


def _raise_fd_limit() -> None:
    """Each call may hold two descriptors (the client's and the pod's)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def serve(settings: GatewaySettings) -> int:
    """Run until SIGTERM/SIGINT, drain, and return the exit status."""
    import json

    loop = asyncio.get_running_loop()
    logs.write_in_background()
    _raise_fd_limit()
    cluster: Any = None
    if settings.feed_file:
        gateway = Gateway(settings)
        for obj in json.loads(Path(settings.feed_file).read_text()):  # noqa: ASYNC240
            gateway.feed.apply(str(obj.get("kind")), "ADDED", obj)
    else:
        from ember_operator.gateway.activator import KubeScaler
        from ember_operator.gateway.cluster import ClusterFeed
        from ember_operator.kube.client import Kube

        kube = await Kube.connect()
        holder: dict[str, Any] = {}
        gateway = Gateway(
            settings, KubeScaler(kube), synced=lambda: bool(holder) and holder["c"].synced
        )
        cluster = holder["c"] = ClusterFeed(kube, gateway.feed, settings)
        cluster.start()
    await gateway.start()
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    logs.emit(
        "info",
        "gateway ready",
        port=gateway.port,
        admin_port=gateway.admin_port,
        signing=settings.signing_secret_file is not None,
        feed=settings.feed_file or "cluster",
    )
    await stopping.wait()
    logs.emit("info", "draining", inflight=len(gateway.proxy.inflight))
    await gateway.drain()
    await gateway.stop()
    if cluster is not None:
        await cluster.stop()
    logs.emit("info", "stopped")
    logs.flush()
    return 0
