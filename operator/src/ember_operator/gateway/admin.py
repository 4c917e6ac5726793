"""The admin port: liveness, readiness, the autoscaler's ``/_/stats`` and
Prometheus ``/metrics``, on the same HTTP core, apart from client traffic.

Apart, so that a caller cannot reach the gateway's counters through a
public Service, and a flood of client requests cannot starve the kubelet's
probes of connections. ``/_/ready`` says 503 until the feed has listed
everything once (a gateway that routes nothing yet must get no traffic)
and again while draining.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ember_operator.gateway.metrics import GatewayMetrics
from ember_runtime import pod
from ember_runtime.http.endpoint import Headers
from ember_runtime.http.protocol import HttpConn
from ember_runtime.http.reply import control_reply

_JSON = [("content-type", "application/json")]
_PROMETHEUS = [("content-type", "text/plain; version=0.0.4; charset=utf-8")]
_HEALTH, _READY, _STATS, _METRICS = (
    p.encode() for p in (pod.HEALTH_PATH, pod.READY_PATH, pod.STATS_PATH, pod.METRICS_PATH)
)


class AdminEndpoint:
    def __init__(
        self,
        metrics: GatewayMetrics,
        stats: Callable[[], dict[str, Any]],
        readiness: Callable[[], str | None],
    ) -> None:
        self.metrics = metrics
        self.stats = stats
        self.readiness = readiness  # None when ready, else why not

    def handle(
        self,
        conn: HttpConn,
        method: bytes,
        path: bytes,
        query: bytes,
        headers: Headers,
        body: bytes,
        request_id: str,
    ) -> None:
        conn.send(control_reply(*self.answer(path)))

    def answer(self, path: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        if path == _HEALTH:
            return 200, _JSON, b'{"status":"ok"}'
        if path == _READY:
            why = self.readiness()
            if why is not None:
                return 503, _JSON, json.dumps({"status": why}).encode()
            return 200, _JSON, b'{"status":"ready"}'
        if path == _STATS:
            return 200, _JSON, json.dumps(self.stats(), separators=(",", ":")).encode()
        if path == _METRICS:
            return 200, _PROMETHEUS, self.metrics.prometheus(self.stats)
        return 404, _JSON, b'{"error":"not found"}'

    def rejected(self, status: int, code: str) -> None:
        return None
