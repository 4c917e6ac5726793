"""The gateway in front of real runtime processes on loopback, with its
endpoints fed the way the cluster watch feeds them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from ember_operator.gateway.config import GatewaySettings
from ember_operator.gateway.server import Gateway
from tests.integration.gateway.gateway_harness import endpoint_slice, function, trigger
from tests.integration.runtime.runtime_harness import Runtime

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


class FakeScaler:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.called = asyncio.Event()

    async def ensure_running(self, namespace: str, name: str) -> None:
        self.calls.append((namespace, name))
        self.called.set()


@pytest.fixture
async def scaler() -> FakeScaler:
    return FakeScaler()


@pytest.fixture
async def gateway(scaler: FakeScaler) -> AsyncIterator[Gateway]:
    settings = GatewaySettings(
        host="127.0.0.1", port=0, admin_port=0, queue_size=50, activation_timeout_seconds=20
    )
    async with Gateway(settings, scaler) as gw:
        yield gw


def client(gw: Gateway, **kw: Any) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    return httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{gw.port}", timeout=30, limits=limits, **kw
    )


async def test_routed_with_path_query_and_headers(gateway: Gateway, runtime: Runtime) -> None:
    gateway.feed.apply("Function", "ADDED", function("t", "app"))
    gateway.feed.apply("EndpointSlice", "ADDED", endpoint_slice("t", "app", runtime.port))
    async with client(gateway) as c:
        r = await c.post(
            "/fn/t/app/echo?x=1&y=two",
            json={"a": 1},
            headers={"x-custom": "yes", "connection": "keep-alive", "x-request-id": "abc-123"},
        )
    assert r.status_code == 200, r.text
    echo = r.json()
    assert echo["path"] == "/echo" and echo["query"] == {"x": "1", "y": "two"}
    assert echo["event"] == {"a": 1} and echo["method"] == "POST"
    h = echo["headers"]
    assert h["x-custom"] == "yes" and h["x-forwarded-for"] == "127.0.0.1"
    assert h["x-forwarded-proto"] == "http" and "connection" not in h
    assert echo["request_id"] == "abc-123" == r.headers["x-request-id"]
    assert echo["traceparent"] and echo["traceparent"].startswith("00-")


async def test_not_found_and_method_not_allowed(gateway: Gateway, runtime: Runtime) -> None:
    feed = gateway.feed
    feed.apply("Function", "ADDED", function("t", "app"))
    feed.apply("EndpointSlice", "ADDED", endpoint_slice("t", "app", runtime.port))
    feed.apply("Trigger", "ADDED", trigger("t", "hook", "app", "/hooks", ["POST"], "2024-01-01"))
    async with client(gateway) as c:
        r = await c.get("/fn/t/nope")
        assert r.status_code == 404 and r.json()["error"] == "Gateway.NotFound"
        r = await c.get("/hooks/x")
        assert r.status_code == 405 and r.headers["allow"] == "POST"
        assert r.json()["error"] == "Gateway.MethodNotAllowed"
        r = await c.post("/hooks/echo", content=b"hi", headers={"content-type": "text/plain"})
        assert r.status_code == 200 and r.json() == {"path": "/hooks/echo"}  # the original path


async def test_a_burst_beyond_the_pods_concurrency_waits_in_the_gateway(
    gateway: Gateway, runtime: Runtime
) -> None:
    gateway.feed.apply("Function", "ADDED", function("t", "app", concurrency=2))
    gateway.feed.apply("EndpointSlice", "ADDED", endpoint_slice("t", "app", runtime.port))
    async with client(gateway) as c:
        # 12 calls of 0.2 s at a pod that runs 2 and queues 2: sent straight
        # at it, 8 would get 429; through the gateway, all are answered.
        rs = await asyncio.gather(*(c.get("/fn/t/app/sleep?s=0.2") for _ in range(12)))
    assert [r.status_code for r in rs] == [200] * 12
    assert runtime.stats()["inflight"] == 0


async def test_held_requests_are_released_when_a_pod_becomes_ready(
    gateway: Gateway, runtime: Runtime, scaler: FakeScaler
) -> None:
    gateway.feed.apply("Function", "ADDED", function("t", "app", concurrency=2))
    async with client(gateway) as c:
        calls = [asyncio.ensure_future(c.get("/fn/t/app/json")) for _ in range(5)]
        await asyncio.wait_for(scaler.called.wait(), 5)
        assert scaler.calls[0] == ("t", "app")
        await asyncio.sleep(0.3)
        stats = (await c.get(f"http://127.0.0.1:{gateway.admin_port}/_/stats")).json()
        assert stats["functions"]["t/app"]["held"] == 5
        # The pod appears, not ready yet: the gateway's own probe finds it.
        started = time.perf_counter()
        gateway.feed.apply(
            "EndpointSlice", "ADDED", endpoint_slice("t", "app", runtime.port, ready=False)
        )
        rs = await asyncio.gather(*calls)
        released = time.perf_counter() - started
        metrics = (await c.get(f"http://127.0.0.1:{gateway.admin_port}/metrics")).text
    assert [r.status_code for r in rs] == [200] * 5
    assert released < 1.0  # probed every 25 ms, not the kubelet's period
    assert 'ember_cold_start_seconds_count{function="t/app"} 1' in metrics


async def test_a_full_queue_answers_503_with_retry_after_at_once(runtime: Runtime) -> None:
    settings = GatewaySettings(
        host="127.0.0.1", port=0, admin_port=0, queue_size=3, activation_timeout_seconds=2
    )
    async with Gateway(settings, FakeScaler()) as gw:
        gw.feed.apply("Function", "ADDED", function("t", "cold"))
        async with client(gw) as c:
            held = [asyncio.ensure_future(c.get("/fn/t/cold/json")) for _ in range(3)]
            await asyncio.sleep(0.2)
            started = time.perf_counter()
            over = await asyncio.gather(*(c.get("/fn/t/cold/json") for _ in range(5)))
            elapsed = time.perf_counter() - started
            timed_out = await asyncio.gather(*held)
    assert [r.status_code for r in over] == [503] * 5 and elapsed < 1.0
    assert all(r.headers["retry-after"] == "1" for r in over)
    assert over[0].json()["error"] == "Gateway.Overloaded"
    # Nobody came up within the activation timeout: 504, not a hang.
    assert [r.status_code for r in timed_out] == [504] * 3
    assert timed_out[0].json()["error"] == "Gateway.ActivationTimeout"


async def test_a_refused_endpoint_is_retried_on_another(
    gateway: Gateway, runtime: Runtime, dead_port: int
) -> None:
    gateway.feed.apply("Function", "ADDED", function("t", "app", concurrency=4))
    gateway.feed.apply("EndpointSlice", "ADDED", endpoint_slice("t", "app", dead_port))
    gateway.feed.apply("EndpointSlice", "ADDED", endpoint_slice("t", "app", runtime.port))
    async with client(gateway) as c:
        rs = await asyncio.gather(*(c.get("/fn/t/app/json") for _ in range(10)))
    assert [r.status_code for r in rs] == [200] * 10


async def test_a_removed_pod_is_not_a_502(gateway: Gateway, runtime: Runtime) -> None:
    """The only pod leaves while requests arrive: they are held, not failed,
    and go out when a pod is listed again."""
    feed = gateway.feed
    feed.apply("Function", "ADDED", function("t", "app"))
    feed.apply("EndpointSlice", "ADDED", endpoint_slice("t", "app", runtime.port, name="s"))
    async with client(gateway) as c:
        assert (await c.get("/fn/t/app/json")).status_code == 200
        feed.apply("EndpointSlice", "DELETED", endpoint_slice("t", "app", runtime.port, name="s"))
        calls = [asyncio.ensure_future(c.get("/fn/t/app/json")) for _ in range(4)]
        await asyncio.sleep(0.2)
        feed.apply("EndpointSlice", "ADDED", endpoint_slice("t", "app", runtime.port, name="s"))
        rs = await asyncio.gather(*calls)
    assert [r.status_code for r in rs] == [200] * 4


class LoadingPod(asyncio.Protocol):
    """A pod that listens but answers ``/_/ready`` 503 until ``ready`` is set,
    and 200 to anything else; it counts the connections it accepts."""

    accepted = 0
    ready = False
    served: list[int] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.t: Any = transport
        LoadingPod.accepted += 1
        self.n = LoadingPod.accepted

    def data_received(self, data: bytes) -> None:
        if data.startswith(b"GET /_/ready"):
            ok = LoadingPod.ready
            body = b'{"status":"ready"}' if ok else b'{"status":"starting"}'
            status = b"200 OK" if ok else b"503 Service Unavailable"
            self.t.write(
                b"HTTP/1.1 %s\r\ncontent-length: %d\r\nconnection: close\r\n\r\n%s"
                % (status, len(body), body)
            )
            self.t.close()
            return
        LoadingPod.served.append(self.n)
        self.t.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")


async def test_connections_to_a_loading_pod_are_opened_before_it_is_ready(
    gateway: Gateway,
) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(LoadingPod, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        gateway.feed.apply("Function", "ADDED", function("t", "slow", concurrency=3))
        async with client(gateway) as c:
            calls = [asyncio.ensure_future(c.get("/fn/t/slow/")) for _ in range(5)]
            await asyncio.sleep(0.2)
            gateway.feed.apply(
                "EndpointSlice", "ADDED", endpoint_slice("t", "slow", port, ready=False)
            )
            await asyncio.sleep(0.3)
            # Probed (503) while loading; 3 connections (its concurrency, not
            # the 5 held) wait in the pool.
            pod = gateway.proxy.backends[("t", "slow")].pods[("127.0.0.1", port)]
            assert len(pod.idle) == 3 and not LoadingPod.served
            opened_before_ready = LoadingPod.accepted
            LoadingPod.ready = True
            rs = await asyncio.gather(*calls)
    finally:
        server.close()
    assert [r.status_code for r in rs] == [200] * 5
    # The first three went on the warm connections.
    assert all(n <= opened_before_ready for n in LoadingPod.served[:3])


async def test_one_functions_cold_start_does_not_hold_up_another(
    runtime: Runtime, dead_port: int
) -> None:
    """While one Function waits for a pod that never gets ready (held calls,
    the activator probing a dead address every 25 ms), another Function's
    calls go straight through: holding is per function, never global."""
    settings = GatewaySettings(
        host="127.0.0.1", port=0, admin_port=0, queue_size=100, activation_timeout_seconds=5
    )
    async with Gateway(settings, FakeScaler()) as gw:
        gw.feed.apply("Function", "ADDED", function("t", "cold"))
        gw.feed.apply("EndpointSlice", "ADDED", endpoint_slice("t", "cold", dead_port, ready=False))
        gw.feed.apply("Function", "ADDED", function("t", "app", concurrency=2))
        gw.feed.apply("EndpointSlice", "ADDED", endpoint_slice("t", "app", runtime.port))
        async with client(gw) as c:
            held = [asyncio.ensure_future(c.get("/fn/t/cold/json")) for _ in range(50)]
            await asyncio.sleep(0.2)
            stats = (await c.get(f"http://127.0.0.1:{gw.admin_port}/_/stats")).json()
            assert stats["functions"]["t/cold"]["held"] == 50
            warm = []
            for _ in range(30):
                started = time.perf_counter()
                r = await c.get("/fn/t/app/json")
                warm.append((r.status_code, time.perf_counter() - started))
            assert not any(f.done() for f in held), "cold calls were answered early"
            cold = await asyncio.gather(*held)
    assert [code for code, _ in warm] == [200] * 30
    # Each answered while the other function was still held: far inside the
    # cold one's 5 s activation timeout (a liveness bound, not a speed goal).
    assert max(seconds for _, seconds in warm) < 1.0
    assert {r.status_code for r in cold} == {504}
