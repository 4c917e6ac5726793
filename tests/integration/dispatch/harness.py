"""The async path on loopback: a real Redis, the gateway in-process (with
its async API) in front of a real runtime process, and dispatchers
in-process over a static list of sources, each with its own consumer
name, so a test can kill one and start another."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from redis.asyncio import Redis

from ember_operator.dispatch.dispatcher import Dispatcher
from ember_operator.dispatch.keys import SlotKeys
from ember_operator.dispatch.settings import DispatchSettings
from ember_operator.dispatch.sources import SourceSet
from ember_operator.gateway.server import Gateway
from tests.integration.gateway.gateway_harness import endpoint_slice, function
from tests.integration.runtime.runtime_harness import Runtime
from tests.redis_harness import RedisServer

FUNCTIONS = Path(__file__).resolve().parent / "functions"
NS = "t"


def route(gateway: Gateway, name: str, port: int, concurrency: int = 4) -> None:
    """A Function ``name`` served by the runtime on ``port``."""
    gateway.feed.apply("Function", "ADDED", function(NS, name, concurrency=concurrency))
    gateway.feed.apply("EndpointSlice", "ADDED", endpoint_slice(NS, name, port))


def queue_trigger(name: str, fn: str, stream: str, **queue: Any) -> dict[str, Any]:
    return {
        "kind": "Trigger",
        "metadata": {"namespace": NS, "name": name},
        "spec": {"function": fn, "queue": {"stream": stream, **queue}},
    }


def fn_object(name: str) -> dict[str, Any]:
    return function(NS, name)


class Dispatchers:
    """Starts dispatchers (in-process, one consumer name each) over the
    same sources; stops whatever is left at the end."""

    def __init__(self, settings: DispatchSettings, objects: list[dict[str, Any]]) -> None:
        self.settings = settings
        self.objects = objects
        self.live: list[Dispatcher] = []
        self.started = 0

    async def start(self, **overrides: Any) -> Dispatcher:
        settings = self.settings
        if overrides:
            settings = DispatchSettings(**{**settings.__dict__, **overrides})
        self.started += 1
        sources = SourceSet(settings.async_policy, settings.concurrency)
        for obj in self.objects:
            sources.apply(str(obj["kind"]), "ADDED", obj)
        d = Dispatcher(settings, sources, consumer=f"consumer-{self.started}")
        await d.start()
        self.live.append(d)
        return d

    async def kill(self, d: Dispatcher) -> None:
        self.live.remove(d)
        await d.kill()

    async def stop(self, d: Dispatcher, drain: float = 5.0) -> None:
        self.live.remove(d)
        await d.stop(drain)

    async def close(self) -> None:
        for d in list(self.live):
            await d.kill()
        self.live.clear()


def attempts_log(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


async def until(
    what: str, check: Callable[[], Any], within: float = 20.0, every: float = 0.05
) -> Any:
    """Poll ``check`` (sync or async) until it returns something truthy."""
    deadline = time.monotonic() + within
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(every)
    raise AssertionError(f"{what}: not reached in {within}s (last: {last!r})")


async def status_of(client: httpx.AsyncClient, fn: str, inv: str) -> dict[str, Any]:
    r = await client.get(f"/async/{NS}/{fn}/{inv}")
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def final_status(
    client: httpx.AsyncClient, fn: str, inv: str, within: float = 20.0
) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        s = await status_of(client, fn, inv)
        return s if s["status"] in ("succeeded", "failed", "dead-lettered") else None

    return await until(f"invocation {inv} finished", check, within)  # type: ignore[no-any-return]


def counts_of(d: Dispatcher) -> dict[str, int]:
    """The counters of a dispatcher's one source."""
    return d.metrics.counts[next(iter(d.metrics.counts))]


async def redrive_cli(redis_url: str, *args: str) -> str:
    """``python -m ember_operator.dispatch redrive ARGS``, as documented:
    asserts it exits 0 and returns what it printed."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ember_operator.dispatch",
        "redrive",
        *args,
        env={**os.environ, "EMBER_REDIS_URL": redis_url},
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0
    return out.decode()


async def record_is(r: Redis, slot: SlotKeys, inv: str, status: str, within: float = 20.0) -> None:
    """Wait until the stored record of ``inv`` has ``status``."""

    async def check() -> bool:
        return await r.hget(slot.record(inv), "status") == status.encode()

    await until(f"{inv} {status}", check, within)


@dataclass
class Rig:
    """One test's loopback: the gateway and a client of it, the runtime, a
    Redis (and a client of it), the fleet of dispatchers, and a log file the
    function appends each call to."""

    gateway: Gateway
    client: httpx.AsyncClient
    runtime: Runtime
    redis: RedisServer
    r: Redis
    fleet: Callable[..., Dispatchers]
    tmp_path: Path

    @property
    def log(self) -> Path:
        return self.tmp_path / "calls.log"

    def calls(self) -> list[dict[str, Any]]:
        return attempts_log(self.log)

    def route(self, name: str = "jobs", concurrency: int = 4) -> None:
        route(self.gateway, name, self.runtime.port, concurrency)

    async def post(self, body: Any = None, **kw: Any) -> httpx.Response:
        return await self.client.post(f"/async/{NS}/jobs", json=body, **kw)

    async def submit(self, body: Any = None, **kw: Any) -> str:
        """POST to the async API of ``jobs``: the invocation id."""
        return (await self.post(body, **kw)).json()["invocationId"]  # type: ignore[no-any-return]

    async def dispatch(self, **settings: Any) -> Dispatcher:
        """A dispatcher over the Function ``jobs``, started."""
        return await self.fleet([fn_object("jobs")], **settings).start()

    async def final(self, inv: str, within: float = 20.0) -> dict[str, Any]:
        return await final_status(self.client, "jobs", inv, within)

    async def logged(self, n: int, within: float = 20.0) -> None:
        """Wait until at least ``n`` calls are in the log."""
        await until(f"{n} calls logged", lambda: len(self.calls()) >= n, within)
