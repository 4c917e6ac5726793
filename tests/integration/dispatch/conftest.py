"""Fixtures for the async path: a real Redis per test, one runtime process
per module (stateless: the event says what to do), the gateway in-process
with its async API, and a factory of dispatchers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from ember_operator.dispatch.settings import DispatchSettings
from ember_operator.gateway.config import GatewaySettings
from ember_operator.gateway.server import Gateway
from tests.integration.dispatch.harness import FUNCTIONS, Dispatchers, Rig
from tests.integration.runtime.runtime_harness import Runtime, start_runtime
from tests.redis_harness import RedisServer, redis_server


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    with redis_server(tmp_path) as server:
        yield server


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    tmp = tmp_path_factory.mktemp("dispatch-runtime")
    rt = start_runtime(
        tmp,
        FUNCTIONS / "jobs.py",
        concurrency=8,
        queue_depth=8,
        timeout_seconds=10,
        function="t/jobs",
    )
    yield rt
    rt.stop()


def gateway_settings(redis: RedisServer, **kw: object) -> GatewaySettings:
    base: dict[str, object] = {
        "host": "127.0.0.1",
        "port": 0,
        "admin_port": 0,
        "redis_url": redis.url,
        "async_callback_hosts": "127.0.0.1,*.example.com",
        "async_max_body_bytes": 64 * 1024,
        "drain_seconds": 0.0,
    }
    return GatewaySettings(**{**base, **kw})  # type: ignore[arg-type]


@pytest.fixture
async def gateway(redis: RedisServer) -> AsyncIterator[Gateway]:
    async with Gateway(gateway_settings(redis)) as gw:
        yield gw


@pytest.fixture
async def client(gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway.port}", timeout=30) as c:
        yield c


def dispatch_settings(redis: RedisServer, gateway: Gateway, **kw: object) -> DispatchSettings:
    base: dict[str, object] = {
        "redis_url": redis.url,
        "gateway_url": f"http://127.0.0.1:{gateway.port}",
        "max_retries": 3,
        "backoff_initial_seconds": 0.2,
        "backoff_max_seconds": 2.0,
        "visibility_timeout_seconds": 1.0,
        "read_block_seconds": 0.5,
        "poll_seconds": 0.2,
        "drain_seconds": 5.0,
    }
    return DispatchSettings(**{**base, **kw})  # type: ignore[arg-type]


@pytest.fixture
async def fleet(redis: RedisServer, gateway: Gateway) -> AsyncIterator[Callable[..., Dispatchers]]:
    """``fleet(objects, **settings)``: dispatchers over those Functions and
    Triggers (started with ``.start()``), all stopped at the end."""
    made: list[Dispatchers] = []

    def make(objects: list[dict[str, Any]], **kw: object) -> Dispatchers:
        d = Dispatchers(dispatch_settings(redis, gateway, **kw), objects)
        made.append(d)
        return d

    yield make
    for d in made:
        await d.close()


@pytest.fixture
async def rig(
    gateway: Gateway,
    client: httpx.AsyncClient,
    runtime: Runtime,
    redis: RedisServer,
    fleet: Callable[..., Dispatchers],
    tmp_path: Path,
) -> AsyncIterator[Rig]:
    """All of the above in one, with a Redis client closed at the end."""
    r = Redis.from_url(redis.url)
    yield Rig(gateway, client, runtime, redis, r, fleet, tmp_path)
    await r.aclose()
