"""Retries, dead letters and redrive against a real Redis and a real
runtime: the backoff the function sees matches the configured schedule
(within 20 %), a bad request is dead-lettered at once, and redrive after
a fix makes every dead letter succeed."""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from ember_operator.dispatch import keys
from ember_operator.dispatch.redrive import redrive_function
from ember_operator.gateway.server import Gateway
from tests.integration.dispatch.harness import (
    NS,
    Dispatchers,
    attempts_log,
    final_status,
    fn_object,
    route,
)
from tests.integration.runtime.runtime_harness import Runtime
from tests.redis_harness import RedisServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

# Seconds, not milliseconds: the gateway, the dispatcher and this test share
# one event loop on a busy machine, and a 20 % bound must hold with that.
INITIAL, MAX_RETRIES = 1.0, 2


async def test_poison_messages_retry_on_schedule_then_dead_letter_then_redrive(
    gateway: Gateway,
    client: httpx.AsyncClient,
    runtime: Runtime,
    fleet: Callable[..., Dispatchers],
    redis: RedisServer,
    tmp_path: Path,
) -> None:
    """100 messages, 2 of them poison (503 until a fix): exactly the 2 are
    dead-lettered after maxRetries + 1 attempts, spaced by the backoff.
    The dispatcher's bound is the function's capacity (8), so a due retry
    waits for a free call, not in the gateway's queue behind the backlog."""
    route(gateway, "jobs", runtime.port, concurrency=8)
    log, fix = tmp_path / "calls.log", tmp_path / "fixed"
    poison = {13, 77}
    ids: dict[int, str] = {}
    for n in range(100):
        body = {"do": "fixable" if n in poison else "ok", "fix": str(fix), "n": n, "log": str(log)}
        r = await client.post(f"/async/{NS}/jobs", json=body)
        assert r.status_code == 202
        ids[n] = r.json()["invocationId"]
    d = await fleet(
        [fn_object("jobs")],
        max_retries=MAX_RETRIES,
        backoff_initial_seconds=INITIAL,
        backoff_max_seconds=10.0,
        concurrency=8,
    ).start()
    finals = await asyncio.gather(*(final_status(client, "jobs", ids[n], 30) for n in range(100)))
    dead = {n for n, s in zip(range(100), finals, strict=True) if s["status"] == "dead-lettered"}
    assert dead == poison
    assert all(s["status"] == "succeeded" for n, s in enumerate(finals) if n not in poison)

    calls = attempts_log(log)
    for n in poison:
        mine = sorted((c for c in calls if c["n"] == n), key=lambda c: c["t"])
        assert [c["attempt"] for c in mine] == [str(a) for a in range(1, MAX_RETRIES + 2)]
        # From the end of a failed attempt to the start of the next one.
        gaps = [b["t"] - a["end"] for a, b in itertools.pairwise(mine)]
        for i, gap in enumerate(gaps):
            nominal = INITIAL * 2**i
            assert 0.8 * nominal <= gap <= 1.2 * nominal, (n, i, gaps)
        status = finals[n]
        assert status["attempts"] == MAX_RETRIES + 1
        assert (
            "HTTP 503" in status["error"] and f"after {MAX_RETRIES + 1} attempts" in status["error"]
        )

    r = Redis.from_url(redis.url)
    slot = keys.function_keys(NS, "jobs")
    letters = await r.xrange(slot.dead_letters)
    assert len(letters) == len(poison)
    for _, fields in letters:
        assert fields[b"attempts"] == str(MAX_RETRIES + 1).encode()
        assert b"HTTP 503" in fields[b"error"]
        assert float(fields[b"dead_at"]) > float(fields[b"first"]) > 0
        assert fields[b"last_status"] == b"503"
    assert d.metrics.counts[next(iter(d.metrics.counts))]["dead_lettered"] == len(poison)

    fix.touch()  # the fix ships; then the documented command replays them
    env = {**os.environ, "EMBER_REDIS_URL": redis.url}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ember_operator.dispatch",
        "redrive",
        f"{NS}/jobs",
        env=env,
        stdout=asyncio.subprocess.PIPE,
    )
    stdout, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0
    out = stdout.decode()
    assert f"{len(poison)} dead letter(s) of Function {NS}/jobs queued again" in out
    for n in poison:
        assert f"moved {ids[n]}: HTTP 503" in out
    for n in poison:
        again = await final_status(client, "jobs", ids[n], 20)
        assert again["status"] == "succeeded" and again["attempts"] == 1, again
    assert await r.xlen(slot.dead_letters) == 0
    assert await r.xlen(slot.stream) == 0  # acknowledged entries are deleted
    await r.aclose()


async def test_a_4xx_is_dead_lettered_at_once(
    gateway: Gateway,
    client: httpx.AsyncClient,
    runtime: Runtime,
    fleet: Callable[..., Dispatchers],
    redis: RedisServer,
    tmp_path: Path,
) -> None:
    route(gateway, "jobs", runtime.port)
    log = tmp_path / "calls.log"
    r = await client.post(f"/async/{NS}/jobs", json={"do": "bad", "log": str(log)})
    inv = r.json()["invocationId"]
    await fleet([fn_object("jobs")], max_retries=5).start()
    done = await final_status(client, "jobs", inv)
    assert done["status"] == "dead-lettered" and done["attempts"] == 1
    assert "HTTP 422" in done["error"] and "not retried" in done["error"]
    assert done["result"]["status"] == 422 and '"bad"' in done["result"]["body"]
    assert len(attempts_log(log)) == 1
    r2 = Redis.from_url(redis.url)
    assert await r2.xlen(keys.function_keys(NS, "jobs").dead_letters) == 1
    await r2.aclose()


async def test_redrive_from_python_resets_attempts(
    gateway: Gateway,
    client: httpx.AsyncClient,
    runtime: Runtime,
    fleet: Callable[..., Dispatchers],
    redis: RedisServer,
    tmp_path: Path,
) -> None:
    route(gateway, "jobs", runtime.port)
    fix = tmp_path / "fixed"
    r = await client.post(f"/async/{NS}/jobs", json={"do": "fixable", "fix": str(fix)})
    inv = r.json()["invocationId"]
    await fleet([fn_object("jobs")], max_retries=0).start()
    assert (await final_status(client, "jobs", inv))["status"] == "dead-lettered"
    fix.touch()
    r2 = Redis.from_url(redis.url)
    moved = await redrive_function(r2, NS, "jobs")
    assert [m.invocation_id for m in moved] == [inv]
    assert (await client.get(f"/async/{NS}/jobs/{inv}")).json()["attempts"] in (0, 1)
    done = await final_status(client, "jobs", inv)
    assert done["status"] == "succeeded" and done["attempts"] == 1
    assert await redrive_function(r2, NS, "jobs") == []
    await r2.aclose()
