"""The dispatcher's port (``EMBER_METRICS_PORT``, 9090): ``/metrics``,
``/_/health`` and ``/_/ready``, on the runtime's HTTP core like the
gateway's admin port, so probes and scrapes share one parser and one set
of limits with everything else Ember serves.

Ready means: the sources are listed, Redis answered the last check, and
the dispatcher is not stopping. Health is only "the loop runs": a Redis
outage is not cured by restarting the dispatcher.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from ember_operator.dispatch.metrics import DispatchMetrics
from ember_runtime import pod
from ember_runtime.http.endpoint import Headers
from ember_runtime.http.reply import control_reply

_JSON = [("content-type", "application/json")]
_PROMETHEUS = [("content-type", "text/plain; version=0.0.4; charset=utf-8")]
_HEALTH, _READY, _METRICS = (
    p.encode() for p in (pod.HEALTH_PATH, pod.READY_PATH, pod.METRICS_PATH)
)


class DispatchAdmin:
    def __init__(self, metrics: DispatchMetrics, readiness: Callable[[], str | None]) -> None:
        self.metrics = metrics
        self.readiness = readiness  # None when ready, else why not

    def handle(
        self,
        conn: object,
        method: bytes,
        path: bytes,
        query: bytes,
        headers: Headers,
        body: object,
        request_id: str,
    ) -> None:
        conn.send(control_reply(*self.answer(path)))  # type: ignore[attr-defined]

    def answer(self, path: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        if path == _HEALTH:
            return 200, _JSON, b'{"status":"ok"}'
        if path == _READY:
            why = self.readiness()
            if why is not None:
                return 503, _JSON, json.dumps({"status": why}).encode()
            return 200, _JSON, b'{"status":"ready"}'
        if path == _METRICS:
            return 200, _PROMETHEUS, self.metrics.render()
        return 404, _JSON, b'{"error":"not found"}'

    def rejected(self, status: int, code: str) -> None:
        return None
