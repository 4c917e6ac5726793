"""What the gateway says about its traffic: Prometheus text on the admin
port, and the counters behind the autoscaler's ``/_/stats``.

Written by hand, like the runtime's: a few counters and two histograms per
Function are a few lines, and the hot path stays a dict lookup, two
increments and a bisect. ``ember_cold_start_seconds`` runs from the first
request held while a Function had no usable pod to that request's answer,
the wait a caller actually saw (knative/serving#13459 asks for it still).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable
from typing import Any

LATENCY_BUCKETS: tuple[float, ...] = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)
LATENCY_BUCKETS += (0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
COLD_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0)


class Histogram:
    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def lines(self, name: str, labels: str) -> Iterable[str]:
        cumulative = 0
        for bound, n in zip((*self.bounds, float("inf")), self.counts, strict=True):
            cumulative += n
            le = "+Inf" if bound == float("inf") else _num(bound)
            yield f'{name}_bucket{{{labels},le="{le}"}} {cumulative}'
        yield f"{name}_sum{{{labels}}} {_num(self.sum)}"
        yield f"{name}_count{{{labels}}} {cumulative}"


class FunctionMetrics:
    __slots__ = ("by_code", "cold", "latency")

    def __init__(self) -> None:
        self.by_code: dict[int, int] = {}
        self.latency = Histogram(LATENCY_BUCKETS)
        self.cold: Histogram | None = None


class GatewayMetrics:
    def __init__(self) -> None:
        self.functions: dict[str, FunctionMetrics] = {}
        self.unrouted_by_code: dict[int, int] = {}  # 404/405 and the core's 4xx

    def _fn(self, function: str) -> FunctionMetrics:
        m = self.functions.get(function)
        if m is None:
            m = self.functions[function] = FunctionMetrics()
        return m

    def observe(self, function: str, status: int, seconds: float) -> None:
        m = self.functions.get(function) or self._fn(function)
        m.by_code[status] = m.by_code.get(status, 0) + 1
        m.latency.observe(seconds)

    def cold_start(self, function: str, seconds: float) -> None:
        m = self._fn(function)
        if m.cold is None:
            m.cold = Histogram(COLD_BUCKETS)
        m.cold.observe(seconds)

    def unrouted(self, status: int) -> None:
        self.unrouted_by_code[status] = self.unrouted_by_code.get(status, 0) + 1

    def rejected(self, status: int) -> None:
        self.unrouted(status)

    def prometheus(self, gauges: Callable[[], dict[str, Any]]) -> bytes:
        """``gauges()``: the proxy's stats (in-flight and held per function)."""
        live = gauges()["functions"]
        out: list[str] = []

        def head(name: str, kind: str, help_: str) -> None:
            out.append(f"# HELP {name} {help_}")
            out.append(f"# TYPE {name} {kind}")

        head("ember_gateway_requests_total", "counter", "Requests answered, by function and code.")
        for fn, m in sorted(self.functions.items()):
            for code, n in sorted(m.by_code.items()):
                out.append(f'ember_gateway_requests_total{{{_fn_label(fn)},code="{code}"}} {n}')
        for code, n in sorted(self.unrouted_by_code.items()):
            out.append(f'ember_gateway_requests_total{{function="",code="{code}"}} {n}')
        head(
            "ember_gateway_request_duration_seconds",
            "histogram",
            "Time from a request's arrival to its answer, held time included.",
        )
        for fn, m in sorted(self.functions.items()):
            out.extend(m.latency.lines("ember_gateway_request_duration_seconds", _fn_label(fn)))
        head("ember_gateway_inflight_requests", "gauge", "Requests at a pod now.")
        for fn, s in sorted(live.items()):
            out.append(f"ember_gateway_inflight_requests{{{_fn_label(fn)}}} {s['inflight']}")
        head("ember_gateway_held_requests", "gauge", "Requests waiting in the gateway for a pod.")
        for fn, s in sorted(live.items()):
            out.append(f"ember_gateway_held_requests{{{_fn_label(fn)}}} {s['held']}")
        head(
            "ember_cold_start_seconds",
            "histogram",
            "From the first request held while a function had no ready pod to its answer.",
        )
        for fn, m in sorted(self.functions.items()):
            if m.cold is not None:
                out.extend(m.cold.lines("ember_cold_start_seconds", _fn_label(fn)))
        return ("\n".join(out) + "\n").encode()


def _fn_label(function: str) -> str:
    return 'function="' + function.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _num(v: float) -> str:
    if float(v).is_integer():
        return str(int(v))
    return repr(float(v))
