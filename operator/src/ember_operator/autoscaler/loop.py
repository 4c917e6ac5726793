"""The autoscaler's tick: read the load, decide, scale, report.

One loop in the operator process, every 2 s: one place sums what every
gateway replica sees, so no two scalers argue over a Deployment. A tick
reads memory (informers) and the gateways' stats, never lists from the API
server; it writes a Deployment's ``scale`` only when the count changes, and
a Function's ``status.autoscaler`` only when the decision changes: every
status write is an API write and a kopf event (see ``operator_reconcile``
in the README). The observed concurrency alone refreshes the status at most
every 30 s.

The operator has no Prometheus endpoint (only kopf's liveness probe), so
the counters live in ``Counters`` and, per Function, in the status
(``scaleUps``, ``scaleDowns``), carried over from the stored status after a
restart. The clock is injected, so tests and ``bench/autoscale_step.py``
drive ``tick()`` on a fake one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import kopf

from ember_operator import status as st
from ember_operator.autoscaler.collect import Collector, Signal, Snapshot
from ember_operator.autoscaler.decide import Decision, FunctionScaler, Observation, Policy
from ember_operator.autoscaler.gateways import GatewaySource
from ember_operator.autoscaler.scale import (
    Deployments,
    FunctionEntry,
    Functions,
    ScaleClient,
    write_scale,
)
from ember_operator.kube.client import ApiError
from ember_operator.kube.objects import Key

log = logging.getLogger("ember_operator.autoscaler")

STATUS_REFRESH_SECONDS = 30.0
WRITES_AT_ONCE = 16
DECISION_FIELDS = ("desiredReplicas", "panic", "reason", "lastScaleTime", "scaleUps", "scaleDowns")


@dataclass
class Counters:
    ticks: int = 0
    scale_writes: int = 0
    status_writes: int = 0
    write_errors: int = 0
    last_tick_seconds: float = 0.0


def autoscaler_status(
    decision: Decision, before: dict[str, Any], scaled: int, at: str | None
) -> dict[str, Any]:
    """``status.autoscaler`` after this tick; ``scaled`` is the change written
    (0: none) at ``at``."""
    ups, downs = int(before.get("scaleUps") or 0), int(before.get("scaleDowns") or 0)
    return {
        "desiredReplicas": decision.desired,
        "observedConcurrency": decision.observed,
        "panic": decision.panic,
        "reason": decision.reason,
        "lastScaleTime": at if scaled else before.get("lastScaleTime"),
        "scaleUps": ups + (scaled > 0),
        "scaleDowns": downs + (scaled < 0),
    }


class Autoscaler:
    def __init__(
        self,
        kube: ScaleClient,
        gateways: GatewaySource,
        *,
        functions: Functions | None = None,
        deployments: Deployments | None = None,
        collector: Collector | None = None,
        policy: Policy | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], str] = st.now,
    ) -> None:
        self.kube = kube
        self.gateways = gateways
        self.functions = functions if functions is not None else Functions()
        self.deployments = deployments if deployments is not None else Deployments()
        self.collector = collector if collector is not None else Collector()
        self.policy = policy or Policy()
        self.clock, self.wall = clock, wall
        self.scalers: dict[Key, FunctionScaler] = {}
        self.status_written: dict[Key, float] = {}  # clock time of the last status write
        self.counters = Counters()
        self.last_decisions: dict[Key, Decision] = {}  # for the metrics endpoint
        self._task: asyncio.Task[None] | None = None
        self._writes = asyncio.Semaphore(WRITES_AT_ONCE)

    # --- one tick -------------------------------------------------------

    async def tick(self) -> dict[Key, Decision]:
        started = time.perf_counter()
        now = self.clock()
        snapshot = await self.collector.collect(self.gateways.addresses())
        decisions: dict[Key, Decision] = {}
        work = []
        # No gateway listed: no load to read and nobody to route it; nothing
        # is decided (and nothing written for 1,000 Functions at once).
        entries = self.functions.entries if snapshot.listed else {}
        for key, fn in entries.items():
            deployment = self.deployments.entries.get(key)
            if deployment is None:
                continue  # not rendered yet: the operator's reconcile comes first
            decision = self._decide(now, key, fn, snapshot, deployment.replicas, deployment.ready)
            decisions[key] = decision
            work.append(self._apply(now, key, fn, decision))
        await asyncio.gather(*work)
        for gone in set(self.scalers) - set(self.functions.entries):
            del self.scalers[gone]
            self.status_written.pop(gone, None)
        self.last_decisions = decisions
        self.counters.ticks += 1
        self.counters.last_tick_seconds = time.perf_counter() - started
        return decisions

    def _decide(
        self, now: float, key: Key, fn: FunctionEntry, snap: Snapshot, current: int, ready: int
    ) -> Decision:
        scaler = self.scalers.get(key)
        if scaler is None:
            scaler = self.scalers[key] = FunctionScaler(now, self.policy)
        signal = snap.functions.get(key) or Signal()
        seen = Observation(signal.concurrency, signal.requests_moved, snap.complete)
        return scaler.decide(now, seen, fn.bounds, current, ready)

    async def _apply(self, now: float, key: Key, fn: FunctionEntry, decision: Decision) -> None:
        async with self._writes:
            deployment = self.deployments.entries.get(key)
            if deployment is None:
                return
            before = deployment.replicas
            try:
                if await write_scale(self.kube, key, deployment, decision.desired):
                    self.counters.scale_writes += 1
                scaled = deployment.replicas - before
                at = self.wall() if scaled else None
                new = autoscaler_status(decision, fn.status, scaled, at)
                if self._worth_writing(now, key, fn.status, new):
                    if await self.kube.patch_status("Function", *key, {"autoscaler": new}):
                        self.counters.status_writes += 1
                    fn.status = new
                    self.status_written[key] = now
            except (kopf.TemporaryError, ApiError) as e:
                self.counters.write_errors += 1
                log.warning("function %s/%s: %s", *key, e)

    def _worth_writing(
        self, now: float, key: Key, old: dict[str, Any], new: dict[str, Any]
    ) -> bool:
        if not old and new["desiredReplicas"] == 0 and not new["lastScaleTime"]:
            return False  # at rest at zero and never scaled: nothing to say
        if any(old.get(f) != new[f] for f in DECISION_FIELDS):
            return True
        if old.get("observedConcurrency") == new["observedConcurrency"]:
            return False
        last = self.status_written.get(key)
        return last is None or now - last >= STATUS_REFRESH_SECONDS

    # --- the loop -------------------------------------------------------

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("autoscaler tick failed")
            await asyncio.sleep(max(0.0, self.policy.tick - (loop.time() - started)))

    def start(self) -> None:
        self._task = asyncio.ensure_future(self.run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.collector.close()
