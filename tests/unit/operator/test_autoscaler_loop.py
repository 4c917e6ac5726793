"""The tick on a fake clock with an in-memory API: it writes a Deployment's
scale only when the count changes, a Function's status only when the
decision does, and reads its tables from informer events."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from ember_operator import status as st
from ember_operator.autoscaler.collect import Collector, Load, Stats
from ember_operator.autoscaler.gateways import StaticGateways
from ember_operator.autoscaler.loop import STATUS_REFRESH_SECONDS, Autoscaler
from ember_operator.autoscaler.scale import Deployments, Functions

pytestmark = pytest.mark.unit

FN = ("team", "hello")


class Api:
    """Records the two writes the autoscaler may make."""

    def __init__(self) -> None:
        self.scales: list[tuple[str, str, int]] = []
        self.statuses: list[dict[str, Any]] = []

    async def scale(self, kind: str, namespace: str, name: str, replicas: int) -> bool:
        assert kind == "Deployment"
        self.scales.append((namespace, name, replicas))
        return True

    async def patch_status(
        self, kind: str, namespace: str, name: str, status: Mapping[str, Any]
    ) -> bool:
        assert kind == "Function" and set(status) == {"autoscaler"}
        self.statuses.append(dict(status["autoscaler"]))
        return True


class World:
    def __init__(self, **scale: Any) -> None:
        self.now = 100.0
        self.load: Stats = {}
        self.api = Api()
        self.functions = Functions()
        self.deployments = Deployments()

        async def fetch(address: str) -> Stats:
            return self.load

        self.autoscaler = Autoscaler(
            self.api,
            StaticGateways(["gw:9090"]),
            functions=self.functions,
            deployments=self.deployments,
            collector=Collector(fetch),
            clock=lambda: self.now,
            wall=lambda: f"t{self.now:.0f}",
        )
        self.scale = scale

    async def setup(self, replicas: int, status: dict[str, Any] | None = None) -> None:
        body = {"metadata": {"namespace": FN[0], "name": FN[1]}, "spec": {"scale": self.scale}}
        if status is not None:
            body["status"] = {"autoscaler": status}
        await self.functions.event("ADDED", body)
        self.deployment(replicas, replicas)

    def deployment(self, replicas: int, ready: int) -> None:
        owner = {"kind": "Function", "name": FN[1], "uid": "u", "controller": True}
        meta = {"namespace": FN[0], "name": FN[1], "ownerReferences": [owner]}
        body = {
            "metadata": meta,
            "spec": {"replicas": replicas},
            "status": {"readyReplicas": ready},
        }
        self.deployments.observe("MODIFIED", body)

    async def ticks(self, n: int, inflight: int = 0, total: int = 0) -> None:
        for _ in range(n):
            self.now += 2.0
            self.load = {FN: Load(inflight, 0, total)}
            await self.autoscaler.tick()


async def test_scales_up_on_load_and_writes_only_changes() -> None:
    w = World(target=5, max=10, idleSeconds=10)
    await w.setup(replicas=1)
    await w.ticks(1, inflight=5, total=1)
    assert w.api.scales == []
    first = w.api.statuses[-1]
    assert first["desiredReplicas"] == 1 and first["lastScaleTime"] is None
    await w.ticks(1, inflight=50, total=2)
    assert w.api.scales == [("team", "hello", 10)]
    status = w.api.statuses[-1]
    assert status["panic"] and status["reason"] == st.REASON_AUTOSCALE_PANIC
    assert status["lastScaleTime"] == f"t{w.now:.0f}" and status["scaleUps"] == 1
    writes = len(w.api.statuses)
    await w.ticks(5, inflight=50, total=3)  # same decision: no write at all
    assert w.api.scales == [("team", "hello", 10)]
    assert len(w.api.statuses) == writes


async def test_idle_function_goes_to_zero_once() -> None:
    w = World(idleSeconds=6)
    await w.setup(replicas=2)
    await w.ticks(10)
    assert w.api.scales == [("team", "hello", 0)]
    assert w.api.statuses[-1]["reason"] == st.REASON_AUTOSCALE_IDLE
    assert w.api.statuses[-1]["scaleDowns"] == 1


async def test_observed_concurrency_alone_refreshes_status_at_most_every_30s() -> None:
    w = World(target=100, max=10, idleSeconds=600)
    await w.setup(replicas=1)
    for i in range(40):  # load creeping up, same decision throughout
        await w.ticks(1, inflight=10 + i % 7, total=i)
    span = 40 * 2.0
    assert len(w.api.statuses) <= 1 + span / STATUS_REFRESH_SECONDS


async def test_a_restarted_operator_keeps_counters_and_rewrites_nothing_unchanged() -> None:
    stored = {
        "desiredReplicas": 0,
        "observedConcurrency": 0.0,
        "panic": False,
        "reason": st.REASON_AUTOSCALE_IDLE,
        "lastScaleTime": "earlier",
        "scaleUps": 3,
        "scaleDowns": 3,
    }
    w = World()
    await w.setup(replicas=0, status=stored)
    await w.ticks(3)
    assert w.api.scales == [] and w.api.statuses == []


async def test_functions_without_a_deployment_are_left_alone() -> None:
    w = World()
    await w.functions.event("ADDED", {"metadata": {"namespace": "team", "name": "new"}})
    await w.ticks(2, inflight=3)
    assert w.api.scales == [] and w.api.statuses == []


async def test_deleted_functions_are_forgotten() -> None:
    w = World(idleSeconds=600)
    await w.setup(replicas=1)
    await w.ticks(1)
    await w.functions.event("DELETED", {"metadata": {"namespace": "team", "name": "hello"}})
    await w.ticks(1)
    assert w.autoscaler.scalers == {}


async def test_without_any_gateway_nothing_is_decided_or_written() -> None:
    w = World(idleSeconds=0)
    w.autoscaler.gateways = StaticGateways([])
    await w.setup(replicas=3)
    await w.ticks(40)
    assert w.api.scales == [] and w.api.statuses == []


async def test_a_function_resting_at_zero_gets_no_status_write() -> None:
    w = World()
    await w.setup(replicas=0)
    await w.ticks(5)
    assert w.api.statuses == []
    await w.ticks(1, inflight=2, total=1)  # held requests: woken
    assert w.api.statuses[-1]["desiredReplicas"] == 1
