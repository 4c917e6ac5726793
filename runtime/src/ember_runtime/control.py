"""The ``/_/*`` and ``/metrics`` answers: what the kubelet, the gateway and
the autoscaler ask a runtime, answered from counters it already keeps.

Liveness and readiness are separate on purpose: ``/_/health`` fails only
when the pod cannot recover by itself (the fork server is gone), while
``/_/ready`` pushes back (429) at saturation and fails while starting or
draining, so the pod leaves service without being restarted.
"""

from __future__ import annotations

from collections.abc import Sized
from typing import Any, Protocol

from ember_runtime import pod
from ember_runtime.limits import Limiter
from ember_runtime.metrics import Metrics
from ember_runtime.pool import WorkerPool

_JSON = [("content-type", "application/json")]
_PROMETHEUS = [("content-type", "text/plain; version=0.0.4; charset=utf-8")]
_HEALTH, _READY, _STATS, _METRICS = (
    p.encode() for p in (pod.HEALTH_PATH, pod.READY_PATH, pod.STATS_PATH, pod.METRICS_PATH)
)


class Serving(Protocol):
    """What the answers are read from (``app.App``)."""

    @property
    def limiter(self) -> Limiter[Any]: ...
    @property
    def pool(self) -> WorkerPool | None: ...
    @property
    def metrics(self) -> Metrics: ...
    @property
    def conns(self) -> Sized: ...
    @property
    def ready(self) -> bool: ...
    @property
    def draining(self) -> bool: ...


def control_answer(path: bytes, app: Serving) -> tuple[int, list[tuple[str, str]], bytes]:
    lim, pool, metrics, draining = app.limiter, app.pool, app.metrics, app.draining
    ready, connections = app.ready, len(app.conns)
    if path == _HEALTH:
        if pool is not None and pool.broken:
            return 503, _JSON, b'{"status":"fork server gone"}'
        return 200, _JSON, b'{"status":"ok"}'
    if path == _READY:
        if draining:
            return 503, _JSON, b'{"status":"draining"}'
        if not ready:
            return 503, _JSON, b'{"status":"starting"}'
        if lim.saturated:
            return 429, _JSON, b'{"status":"saturated"}'
        return 200, _JSON, b'{"status":"ready"}'
    if path == _STATS:
        body = metrics.stats_json(
            inflight=lim.inflight,
            queued=lim.queued,
            concurrency=lim.concurrency,
            draining=draining,
            workers=len(pool.workers) if pool else 0,
            restarts=pool.restarts if pool else 0,
            recycled=pool.recycled if pool else 0,
            connections=connections,
        )
        return 200, _JSON, body
    if path == _METRICS and metrics.enabled:
        body = metrics.prometheus(
            inflight=lim.inflight,
            queued=lim.queued,
            restarts=pool.restarts if pool else 0,
            connections=connections,
        )
        return 200, _PROMETHEUS, body
    return 404, _JSON, b'{"error":"not found"}'
