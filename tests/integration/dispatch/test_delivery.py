"""At least once, never lost: a consumer killed mid-message leaves it to
another one after the visibility timeout, and 1,000 messages survive
dispatchers crashing and restarting under them."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from ember_operator.dispatch import keys
from ember_operator.dispatch.store import Invocations
from ember_operator.gateway.server import Gateway
from tests.integration.dispatch.harness import (
    NS,
    Dispatchers,
    attempts_log,
    final_status,
    fn_object,
    route,
    status_of,
    until,
)
from tests.integration.runtime.runtime_harness import Runtime
from tests.redis_harness import RedisServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


async def test_a_killed_consumer_s_messages_are_claimed_by_another(
    gateway: Gateway,
    client: httpx.AsyncClient,
    runtime: Runtime,
    fleet: Callable[..., Dispatchers],
    redis: RedisServer,
    tmp_path: Path,
) -> None:
    route(gateway, "jobs", runtime.port)
    log = tmp_path / "calls.log"
    ids = []
    for n in range(3):
        body = {"do": "sleep", "s": 0.6, "n": n, "log": str(log)}
        ids.append((await client.post(f"/async/{NS}/jobs", json=body)).json()["invocationId"])
    pool = fleet([fn_object("jobs")], visibility_timeout_seconds=1.0)
    first = await pool.start()
    await until("all three running", lambda: first.inflight == 3, within=10)
    await pool.kill(first)  # a crash: the calls are cut, nothing acknowledged
    r = Redis.from_url(redis.url)
    slot = keys.function_keys(NS, "jobs")
    pending = await r.xpending(slot.stream, keys.GROUP)
    assert pending["pending"] == 3
    assert [c["name"] for c in pending["consumers"]] == [b"consumer-1"]

    loop = asyncio.get_running_loop()
    killed_at = loop.time()
    second = await pool.start()
    finals = [await final_status(client, "jobs", i, 20) for i in ids]
    assert [f["status"] for f in finals] == ["succeeded"] * 3
    # Not before the visibility timeout: the first consumer might have been alive.
    assert all(f["attempts"] == 1 for f in finals)
    assert loop.time() - killed_at >= 1.0
    assert second.metrics.counts[next(iter(second.metrics.counts))]["claimed"] == 3
    assert (await r.xpending(slot.stream, keys.GROUP))["pending"] == 0
    assert await r.xlen(slot.stream) == 0
    # At least once: the cut calls ran too (the runtime finished them), and
    # the claimed copies ran again, carrying the same invocation id.
    await until("the cut calls finished", lambda: len(attempts_log(log)) >= 6, within=5)
    seen = collections.Counter(c["id"] for c in attempts_log(log))
    assert seen == dict.fromkeys(ids, 2)
    await r.aclose()


async def test_a_thousand_messages_through_crashing_dispatchers_lose_nothing(
    gateway: Gateway,
    runtime: Runtime,
    fleet: Callable[..., Dispatchers],
    redis: RedisServer,
    tmp_path: Path,
) -> None:
    """1,000 messages with idempotency keys; the dispatcher crashes (no
    drain) three times mid-run and a new one takes over: every message
    succeeds, each exactly one record, and a call repeated by a crash
    carries the same idempotency key (the function can tell)."""
    route(gateway, "jobs", runtime.port, concurrency=8)
    log = tmp_path / "calls.log"
    r = Redis.from_url(redis.url)
    store = Invocations(r)
    total = 1000
    ids = {}
    for n in range(total):
        body = f'{{"do": "ok", "n": {n}, "log": "{log}"}}'.encode()
        inv, created = await store.submit(
            NS, "jobs", body, {"content-type": "application/json"}, idempotency_key=f"k{n}"
        )
        assert created
        ids[n] = inv
    # Submitting again changes nothing (the cron scheduler relies on this).
    again = await store.submit(NS, "jobs", b"{}", {}, idempotency_key="k5")
    assert again == (ids[5], False)

    pool = fleet([fn_object("jobs")], visibility_timeout_seconds=1.0, concurrency=8)
    slot = keys.function_keys(NS, "jobs")
    kills = 0
    d = await pool.start()
    for _ in range(3):
        want = 150 * (kills + 1)
        await until("some progress", lambda w=want: len(attempts_log(log)) >= w, 30)
        await pool.kill(d)
        kills += 1
        d = await pool.start()

    async def done() -> bool:
        return await r.xlen(slot.stream) == 0

    await until("the stream drained", done, within=60, every=0.2)
    statuses = collections.Counter()
    for n in range(total):
        rec = await r.hgetall(slot.record(ids[n]))
        statuses[rec[b"status"].decode()] += 1
    assert statuses == {"succeeded": total}
    calls = attempts_log(log)
    assert {c["n"] for c in calls} == set(range(total))
    repeated = collections.Counter(c["n"] for c in calls)
    dupes = {n: k for n, k in repeated.items() if k > 1}
    # Only calls cut by a crash run twice: at most one bound's worth per crash.
    assert len(dupes) <= kills * 8, dupes
    for c in calls:
        assert c["key"] == f"k{c['n']}" and c["id"] == ids[c["n"]]
    assert await r.xlen(slot.dead_letters) == 0
    await r.aclose()


async def test_the_dispatcher_rides_out_a_redis_restart(
    gateway: Gateway,
    client: httpx.AsyncClient,
    runtime: Runtime,
    fleet: Callable[..., Dispatchers],
    redis: RedisServer,
    tmp_path: Path,
) -> None:
    route(gateway, "jobs", runtime.port)
    log = tmp_path / "calls.log"
    await fleet([fn_object("jobs")]).start()
    first = (await client.post(f"/async/{NS}/jobs", json={"n": 1, "log": str(log)})).json()
    assert (await final_status(client, "jobs", first["invocationId"]))["status"] == "succeeded"
    redis.restart()  # the data survives (append-only), connections do not

    async def accepted() -> httpx.Response | None:
        r = await client.post(f"/async/{NS}/jobs", json={"n": 2, "log": str(log)})
        return r if r.status_code == 202 else None  # 503 while Redis is away

    second = await until("the API takes submissions again", accepted, within=10, every=0.2)
    done = await final_status(client, "jobs", second.json()["invocationId"], 20)
    assert done["status"] == "succeeded"
    assert (await status_of(client, "jobs", first["invocationId"]))["status"] == "succeeded"
    assert sorted(c["n"] for c in attempts_log(log)) == [1, 2]
