"""The autoscaler's decisions as Prometheus metrics, on the operator's own
port: what it wanted for each Function, what load it saw, whether it was
panicking, and how its ticks and writes went.

``status.autoscaler`` says the same per Function, but a dashboard needs
them over time and across Functions, and the status is written only when a
decision changes (status writes cost the API server). The text is rendered
on each scrape from what the loop already keeps: nothing is added per tick.
"""

from __future__ import annotations

import logging

from aiohttp import web

from ember_operator.autoscaler.loop import Autoscaler

log = logging.getLogger("ember_operator.autoscaler")


def _labels(namespace: str, name: str) -> str:
    esc = [v.replace("\\", "\\\\").replace('"', '\\"') for v in (namespace, name)]
    return f'namespace="{esc[0]}",function="{esc[1]}"'


def render_metrics(autoscaler: Autoscaler) -> str:
    c = autoscaler.counters
    out: list[str] = []

    def metric(name: str, kind: str, help_: str, samples: list[tuple[str, float]]) -> None:
        out.append(f"# HELP {name} {help_}")
        out.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            out.append(f"{name}{{{labels}}} {value:g}" if labels else f"{name} {value:g}")

    decisions = sorted(autoscaler.last_decisions.items())
    metric(
        "ember_autoscaler_desired_replicas",
        "gauge",
        "Replicas the last tick wanted, by Function.",
        [(_labels(*key), d.desired) for key, d in decisions],
    )
    metric(
        "ember_autoscaler_observed_concurrency",
        "gauge",
        "In-flight plus held calls the last decision used, by Function.",
        [(_labels(*key), d.observed) for key, d in decisions],
    )
    metric(
        "ember_autoscaler_panic",
        "gauge",
        "1 while a Function is in panic mode.",
        [(_labels(*key), int(d.panic)) for key, d in decisions],
    )
    metric("ember_autoscaler_ticks_total", "counter", "Ticks run.", [("", c.ticks)])
    metric(
        "ember_autoscaler_scale_writes_total",
        "counter",
        "Writes of a Deployment's scale subresource.",
        [("", c.scale_writes)],
    )
    metric(
        "ember_autoscaler_status_writes_total",
        "counter",
        "Writes of Function status.autoscaler.",
        [("", c.status_writes)],
    )
    metric(
        "ember_autoscaler_write_errors_total",
        "counter",
        "Scale or status writes that failed.",
        [("", c.write_errors)],
    )
    metric(
        "ember_autoscaler_tick_seconds",
        "gauge",
        "How long the last tick took.",
        [("", c.last_tick_seconds)],
    )
    return "\n".join(out) + "\n"


class Exporter:
    """A small aiohttp server (aiohttp already carries the client layer)."""

    def __init__(self, autoscaler: Autoscaler, port: int, host: str = "0.0.0.0") -> None:
        self.autoscaler, self.port, self.host = autoscaler, port, host
        self._runner: web.AppRunner | None = None

    async def _metrics(self, _request: web.Request) -> web.Response:
        return web.Response(
            text=render_metrics(self.autoscaler), content_type="text/plain", charset="utf-8"
        )

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        log.info("autoscaler metrics on :%d/metrics", self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
