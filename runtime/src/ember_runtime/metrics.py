"""What the runtime says about its load: Prometheus text for humans and
dashboards, and a tiny JSON document for the autoscaler, which polls every
pod every two seconds and should not pay for a metrics scrape.

The exposition text is written here rather than with prometheus-client: a
handful of counters and one histogram is a few lines, and the hot path stays
a couple of integer increments.
"""

from __future__ import annotations

import json
import time
from bisect import bisect_left

from ember_runtime.config import process_start_time

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    """Counters for one runtime process. ``enabled=False`` keeps only the
    request count the autoscaler needs."""

    def __init__(
        self, function: str, enabled: bool = True, started_at: float | None = None
    ) -> None:
        self.function = function
        self.enabled = enabled
        self.started_at = started_at if started_at is not None else process_start_time()
        self.requests_total = 0
        self.by_status: dict[int, int] = {}
        self.errors: dict[str, int] = {}
        self.bucket_counts = [0] * (len(BUCKETS) + 1)
        self.duration_sum = 0.0
        self.cold_start_seconds: float | None = None

    def first_call(self) -> None:
        if self.cold_start_seconds is None:
            self.cold_start_seconds = max(0.0, time.time() - self.started_at)

    def observe(self, status: int, error: str, seconds: float) -> None:
        self.requests_total += 1
        if not self.enabled:
            return
        self.by_status[status] = self.by_status.get(status, 0) + 1
        if error:
            self.errors[error] = self.errors.get(error, 0) + 1
        self.bucket_counts[bisect_left(BUCKETS, seconds)] += 1
        self.duration_sum += seconds

    @property
    def errors_total(self) -> int:
        return sum(self.errors.values())

    def stats_json(
        self,
        *,
        inflight: int,
        queued: int,
        concurrency: int,
        draining: bool,
        workers: int,
        restarts: int,
        recycled: int = 0,
        connections: int = 0,
    ) -> bytes:
        return json.dumps(
            {
                "function": self.function,
                "inflight": inflight,
                "queued": queued,
                "concurrency": concurrency,
                "requests_total": self.requests_total,
                "errors_total": self.errors_total,
                "draining": draining,
                "workers": workers,
                "worker_restarts": restarts,
                "worker_recycles": recycled,
                "connections": connections,
                "uptime_seconds": round(time.time() - self.started_at, 3),
            },
            separators=(",", ":"),
        ).encode()

    def prometheus(
        self, *, inflight: int, queued: int, restarts: int, connections: int = 0
    ) -> bytes:
        fn = self.function.replace("\\", "\\\\").replace('"', '\\"')
        lbl = f'function="{fn}"'
        out: list[str] = []

        def metric(name: str, kind: str, help_: str, samples: list[tuple[str, float]]) -> None:
            out.append(f"# HELP {name} {help_}")
            out.append(f"# TYPE {name} {kind}")
            for labels, value in samples:
                out.append(f"{name}{{{labels}}} {_num(value)}")

        metric(
            "ember_invocations_total",
            "counter",
            "Invocations answered, by HTTP status code.",
            [(f'{lbl},code="{code}"', n) for code, n in sorted(self.by_status.items())],
        )
        metric(
            "ember_invocation_errors_total",
            "counter",
            "Failed invocations, by error code.",
            [(f'{lbl},error="{code}"', n) for code, n in sorted(self.errors.items())],
        )
        out.append("# HELP ember_invocation_duration_seconds Time from admission to answer.")
        out.append("# TYPE ember_invocation_duration_seconds histogram")
        cumulative = 0
        for bound, n in zip((*BUCKETS, float("inf")), self.bucket_counts, strict=True):
            cumulative += n
            le = "+Inf" if bound == float("inf") else _num(bound)
            out.append(f'ember_invocation_duration_seconds_bucket{{{lbl},le="{le}"}} {cumulative}')
        out.append(f"ember_invocation_duration_seconds_sum{{{lbl}}} {_num(self.duration_sum)}")
        out.append(f"ember_invocation_duration_seconds_count{{{lbl}}} {cumulative}")
        metric("ember_inflight_invocations", "gauge", "Invocations running now.", [(lbl, inflight)])
        metric(
            "ember_queued_invocations", "gauge", "Invocations waiting for a slot.", [(lbl, queued)]
        )
        metric(
            "ember_worker_restarts_total",
            "counter",
            "Workers replaced after a crash or timeout.",
            [(lbl, restarts)],
        )
        metric(
            "ember_open_connections", "gauge", "Client connections open now.", [(lbl, connections)]
        )
        if self.cold_start_seconds is not None:
            metric(
                "ember_cold_start_seconds",
                "gauge",
                "Time from process start to the first invocation.",
                [(lbl, self.cold_start_seconds)],
            )
        return ("\n".join(out) + "\n").encode()


def _num(v: float) -> str:
    if isinstance(v, int) or float(v).is_integer():
        return str(int(v))
    return repr(float(v))
