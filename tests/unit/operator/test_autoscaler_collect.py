"""Reading the gateways' stats: the sum over replicas, counters that moved,
a replica that stops answering, and finding replicas in EndpointSlices."""

from __future__ import annotations

from typing import Any

import pytest

from ember_operator.autoscaler.collect import Collector, Load, Signal, Stats, parse_stats
from ember_operator.autoscaler.gateways import EndpointSliceGateways, slice_addresses

pytestmark = pytest.mark.unit

FN = ("team", "hello")


class Gateways:
    """Per-address answers the test sets; None: the replica does not answer."""

    def __init__(self) -> None:
        self.answers: dict[str, Stats | None] = {}

    async def __call__(self, address: str) -> Stats:
        stats = self.answers[address]
        if stats is None:
            raise ConnectionRefusedError(address)
        return stats


def test_parse_stats_keys_by_namespace_and_name_and_skips_junk() -> None:
    body = {
        "functions": {
            "team/hello": {"inflight": 2, "held": 1, "requests_total": 9},
            "nonamespace": {"inflight": 1},
            "team/bad": {"inflight": "x"},
            "team/neg": {"inflight": -3},
        }
    }
    stats = parse_stats(body)
    assert stats[FN] == Load(2, 1, 9)
    assert stats[("team", "neg")] == Load(0, 0, 0)
    assert set(stats) == {FN, ("team", "neg")}
    with pytest.raises(ValueError):
        parse_stats({"status": "ok"})


async def test_concurrency_is_summed_over_replicas_and_counters_move() -> None:
    gw = Gateways()
    gw.answers = {"a:9090": {FN: Load(2, 1, 10)}, "b:9090": {FN: Load(3, 0, 5)}}
    c = Collector(gw)
    snap = await c.collect(["a:9090", "b:9090"])
    assert snap.complete and snap.functions[FN] == Signal(6, True)  # first sight: moved
    snap = await c.collect(["a:9090", "b:9090"])
    assert snap.functions[FN] == Signal(6, False)  # same counters
    gw.answers["b:9090"] = {FN: Load(0, 0, 6)}
    snap = await c.collect(["a:9090", "b:9090"])
    assert snap.functions[FN] == Signal(3, True)


async def test_a_silent_replica_is_used_once_then_dropped_and_the_data_is_incomplete() -> None:
    gw = Gateways()
    gw.answers = {"a:1": {FN: Load(4, 0, 1)}, "b:1": {FN: Load(1, 0, 1)}}
    c = Collector(gw)
    await c.collect(["a:1", "b:1"])
    gw.answers["a:1"] = None
    snap = await c.collect(["a:1", "b:1"])
    assert not snap.complete and snap.functions[FN].concurrency == 5  # the last sample
    snap = await c.collect(["a:1", "b:1"])
    assert not snap.complete and snap.functions[FN].concurrency == 1  # dropped
    snap = await c.collect(["b:1"])  # it left the EndpointSlices: gone, not missing
    assert snap.complete and snap.functions[FN].concurrency == 1
    assert c.failures == 2


async def test_no_gateway_at_all_is_missing_data() -> None:
    snap = await Collector(Gateways()).collect([])
    assert not snap.complete and snap.functions == {}


def endpoint_slice(service: str, *endpoints: dict[str, Any], admin: int | None = 9191) -> Any:
    ports = [{"name": "http", "port": 8080}]
    if admin is not None:
        ports.append({"name": "admin", "port": admin})
    return {
        "metadata": {
            "namespace": "ember-system",
            "name": f"{service}-x1",
            "labels": {"kubernetes.io/service-name": service},
        },
        "ports": ports,
        "endpoints": list(endpoints),
    }


def test_slice_addresses_take_serving_endpoints_on_the_admin_port() -> None:
    s = endpoint_slice(
        "gw",
        {"addresses": ["10.0.0.1"], "conditions": {"ready": True}},
        {"addresses": ["10.0.0.2"], "conditions": {"ready": False, "serving": True}},
        {"addresses": ["10.0.0.3"], "conditions": {"ready": False, "serving": False}},
        {"addresses": ["fd00::4"]},
    )
    assert slice_addresses(s, 9090) == ["10.0.0.1:9191", "10.0.0.2:9191", "[fd00::4]:9191"]
    no_admin = endpoint_slice("gw", {"addresses": ["10.0.0.1"]}, admin=None)
    assert slice_addresses(no_admin, 9090) == ["10.0.0.1:9090"]


async def test_only_slices_of_gateway_services_count() -> None:
    g = EndpointSliceGateways(kube=None, namespace="ember-system")  # type: ignore[arg-type]
    await g.slice_event("ADDED", endpoint_slice("gw", {"addresses": ["10.0.0.1"]}))
    await g.slice_event("ADDED", endpoint_slice("other", {"addresses": ["10.0.0.9"]}))
    assert g.addresses() == []  # no gateway Service seen yet
    await g.service_event("ADDED", {"metadata": {"namespace": "ember-system", "name": "gw"}})
    assert g.addresses() == ["10.0.0.1:9191"]
    await g.slice_event("DELETED", endpoint_slice("gw"))
    assert g.addresses() == []
