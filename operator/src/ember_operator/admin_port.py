"""The admin port every control-plane server process runs (the gateway's
and the dispatcher's ``EMBER_METRICS_PORT``/admin port): ``/_/health``,
``/_/ready``, Prometheus ``/metrics`` and, where there is one, the
autoscaler's ``/_/stats``, on the runtime's HTTP core, apart from client
traffic.

Apart, so that a caller cannot reach a process's counters through a public
Service, and a flood of client requests cannot starve the kubelet's probes
of connections. One implementation, so that probes and scrapes behave the
same everywhere Ember serves them. Health is only "the loop runs";
readiness is what the process says (``readiness`` returns None when ready,
else why not).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ember_runtime import pod
from ember_runtime.http.endpoint import Headers
from ember_runtime.http.reply import control_reply

_JSON = [("content-type", "application/json")]
_PROMETHEUS = [("content-type", "text/plain; version=0.0.4; charset=utf-8")]
_HEALTH, _READY, _STATS, _METRICS = (
    p.encode() for p in (pod.HEALTH_PATH, pod.READY_PATH, pod.STATS_PATH, pod.METRICS_PATH)
)


class AdminEndpoint:
    def __init__(
        self,
        metrics: Callable[[], bytes],
        readiness: Callable[[], str | None],
        stats: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.metrics = metrics  # the Prometheus text
        self.readiness = readiness  # None when ready, else why not
        self.stats = stats

    def handle(
        self,
        conn: Any,
        method: bytes,
        path: bytes,
        query: bytes,
        headers: Headers,
        body: object,
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
        if path == _STATS and self.stats is not None:
            return 200, _JSON, json.dumps(self.stats(), separators=(",", ":")).encode()
        if path == _METRICS:
            return 200, _PROMETHEUS, self.metrics()
        return 404, _JSON, b'{"error":"not found"}'

    def rejected(self, status: int, code: str) -> None:
        return None
