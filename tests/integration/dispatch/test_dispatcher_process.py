"""The dispatcher as its own process (``python -m ember_operator.dispatch``
with a static feed): its port answers health, readiness and metrics,
SIGTERM lets the calls in flight finish before it exits, and the cron
scheduler it runs fires schedule Triggers."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from ember_operator.gateway.server import Gateway
from tests.integration.dispatch.harness import NS, Rig, attempts_log, fn_object, until
from tests.integration.runtime.runtime_harness import free_port
from tests.redis_harness import RedisServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


@pytest.fixture
async def dispatcher(
    gateway: Gateway, redis: RedisServer, tmp_path: Path
) -> AsyncIterator[tuple[asyncio.subprocess.Process, int]]:
    feed = tmp_path / "feed.json"
    every_second = {
        "kind": "Trigger",
        "metadata": {"namespace": NS, "name": "every-second"},
        "spec": {
            "function": "ticker",
            "schedule": {
                "cron": "* * * * * *",
                "payload": {"do": "ok", "n": "tick", "log": str(tmp_path / "cron.log")},
            },
        },
    }
    feed.write_text(json.dumps([fn_object("jobs"), fn_object("ticker"), every_second]))
    port = free_port()
    env = {
        **os.environ,
        "EMBER_REDIS_URL": redis.url,
        "EMBER_GATEWAY_URL": f"http://127.0.0.1:{gateway.port}",
        "EMBER_DISPATCH_FEED_FILE": str(feed),
        "EMBER_METRICS_HOST": "127.0.0.1",
        "EMBER_METRICS_PORT": str(port),
        "EMBER_ASYNC_DRAIN_SECONDS": "10",
        "POD_NAME": "dispatcher-under-test",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ember_operator.dispatch",
        env=env,
        stderr=(tmp_path / "dispatcher.log").open("wb"),
    )

    async def ready() -> bool:
        try:
            async with httpx.AsyncClient() as c:
                return (await c.get(f"http://127.0.0.1:{port}/_/ready")).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        await until("the dispatcher is ready", ready, within=20, every=0.1)
        yield proc, port
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_sigterm_finishes_the_calls_in_flight(
    rig: Rig, dispatcher: tuple[asyncio.subprocess.Process, int]
) -> None:
    proc, port = dispatcher
    rig.route("jobs")
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as admin:
        assert (await admin.get("/_/health")).json() == {"status": "ok"}
        ids = [
            await rig.submit({"do": "sleep", "s": 1.0, "n": n, "log": str(rig.log)})
            for n in range(3)
        ]

        async def running() -> bool:
            states = [(await rig.client.get(f"/async/{NS}/jobs/{i}")).json()["status"] for i in ids]
            return states == ["running"] * 3

        await until("all three running", running, within=10)
        metrics = (await admin.get("/metrics")).text
        assert 'ember_dispatch_inflight{kind="function",namespace="t",name="jobs"} 3' in metrics
    proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(proc.wait(), 15) == 0
    # Each call in flight finished and was recorded before the exit.
    for i in ids:
        assert (await rig.final(i, 1))["status"] == "succeeded"
    assert len(rig.calls()) == 3
    lines = [json.loads(x) for x in (rig.tmp_path / "dispatcher.log").read_text().splitlines() if x]
    assert [x["msg"] for x in lines if x["msg"] in ("draining", "stopped")] == [
        "draining",
        "stopped",
    ]


async def test_schedule_triggers_fire_through_the_dispatcher(
    rig: Rig, dispatcher: tuple[asyncio.subprocess.Process, int]
) -> None:
    """The process runs the cron scheduler next to the dispatcher: each
    tick is submitted once (key cron/<ns>/<trigger>/<tick>) and called."""
    rig.route("ticker")
    log = rig.tmp_path / "cron.log"
    await until("three ticks called", lambda: len(attempts_log(log)) >= 3, within=15)
    calls = attempts_log(log)
    keys = [c["key"] for c in calls]
    assert all(k.startswith(f"cron/{NS}/every-second/") for k in keys), keys
    assert len(set(keys)) == len(keys) and len({c["id"] for c in calls}) == len(calls)
