"""Queue Triggers: a user's stream read through a consumer group of the
Trigger's own, in the user's message format; back-pressure from a slow
function slows the Trigger down without using up retries; dead letters
land in the Trigger's dead-letter stream and redrive from there."""

from __future__ import annotations

import asyncio
import itertools
import json

import httpx
import pytest
from redis.asyncio import Redis

from ember_operator.admin_port import AdminEndpoint
from ember_operator.dispatch import keys
from ember_operator.gateway.server import Gateway
from ember_runtime.http.connections import Connections
from ember_runtime.http.limits import HttpLimits
from ember_runtime.http.protocol import HttpConn
from tests.integration.dispatch.conftest import gateway_settings
from tests.integration.dispatch.harness import (
    NS,
    Rig,
    counts_of,
    queue_trigger,
    record_is,
    redrive_cli,
    route,
    until,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


async def group_ready(r: Redis, stream: str, trigger: str) -> None:
    """A Trigger's group starts at the stream's end: wait until it exists."""

    async def exists() -> bool:
        if not await r.exists(stream):
            return False
        groups = await r.xinfo_groups(stream)
        return keys.trigger_group(NS, trigger).encode() in [g["name"] for g in groups]

    await until(f"the group of {trigger}", exists, within=10)


async def test_message_formats_and_idempotency_keys(rig: Rig) -> None:
    rig.route("jobs")
    log, r = rig.log, rig.r
    await r.xadd("orders", {"before": "the trigger"})  # history: not replayed
    await rig.fleet([queue_trigger("orders", "jobs", "orders")]).start()
    await group_ready(r, "orders", "orders")
    body = json.dumps({"do": "ok", "n": 1, "log": str(log)})
    await r.xadd("orders", {"body": body, "content-type": "application/json"})
    await r.xadd("orders", {"do": "ok", "n": "2", "log": str(log)})
    text_id = (await r.xadd("orders", {"body": "plain", "content-type": "text/plain"})).decode()
    await r.xadd("orders", {"do": "ok", "n": "3", "log": str(log), "idempotency-key": "abc"})
    await rig.logged(3)
    await record_is(r, keys.trigger_keys(NS, "orders"), text_id, "succeeded")
    # The same key again, after it succeeded: acknowledged, not invoked.
    await r.xadd("orders", {"do": "ok", "n": "3", "log": str(log), "idempotency-key": "abc"})
    await r.xadd("orders", {"do": "ok", "n": "4", "log": str(log)})
    await until("the last call", lambda: any(c["n"] == "4" for c in rig.calls()))
    calls = rig.calls()
    assert sorted(str(c["n"]) for c in calls) == ["1", "2", "3", "4"]
    assert [c["key"] for c in calls if c["n"] == "3"] == ["abc"]

    async def all_acked() -> bool:
        info = await r.xinfo_groups("orders")
        return info[0]["pending"] == 0 and info[0]["lag"] == 0

    await until("every entry acknowledged", all_acked)
    assert await r.xlen("orders") == 7  # the user's stream is the user's: nothing deleted


async def test_back_pressure_slows_the_trigger_and_uses_no_retries(rig: Rig) -> None:
    """A function that runs one call at a time behind a gateway that holds
    one more: a Trigger allowed 6 at once gets 503 Overloaded for the rest.
    That is back-pressure: with maxRetries 0 a single counted failure would
    dead-letter a message, and none is."""
    log, r = rig.log, rig.r
    async with Gateway(gateway_settings(rig.redis, queue_size=1)) as gw:
        route(gw, "slow", rig.runtime.port, concurrency=1)
        trigger = queue_trigger("work", "slow", "work", maxRetries=0, concurrency=6)
        pool = rig.fleet([trigger], gateway_url=f"http://127.0.0.1:{gw.port}")
        d = await pool.start()
        await group_ready(r, "work", "work")
        for n in range(12):
            await r.xadd("work", {"do": "sleep", "s": "0.1", "n": str(n), "log": str(log)})
        await rig.logged(12, within=40)
        await asyncio.sleep(0.3)
        counts = counts_of(d)
        assert counts["back_pressure"] > 0
        assert counts["retried"] == 0 and counts["dead_lettered"] == 0
        assert counts["succeeded"] == 12
        calls = sorted(rig.calls(), key=lambda c: c["t"])
        assert sorted(int(c["n"]) for c in calls) == list(range(12))  # each once
        for a, b in itertools.pairwise(calls):  # concurrency 1 held
            assert b["t"] >= a["end"] - 0.001
        assert await r.xlen("work-dlq") == 0

        # What the dispatcher says about it, on its port.
        await d.metrics.collect(d.redis, [s for s in d.sources.sources.values()])
        admin = AdminEndpoint(d.metrics.render, lambda: None)
        conns = Connections(HttpLimits(max_connections=8, idle_timeout=5.0))
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: HttpConn(admin, conns), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as c:
                text = (await c.get("/metrics")).text
                assert (await c.get("/_/ready")).status_code == 200
                assert (await c.get("/_/health")).json() == {"status": "ok"}
        finally:
            server.close()
        labels = 'kind="trigger",namespace="t",name="work"'
        assert f"ember_dispatch_succeeded_total{{{labels}}} 12" in text
        assert f"ember_dispatch_back_pressure_total{{{labels}}}" in text
        assert f"ember_dispatch_queued{{{labels}}} 0" in text
        assert f"ember_dispatch_oldest_message_age_seconds{{{labels}}} 0" in text


async def test_dead_letters_of_a_trigger_and_redrive(rig: Rig) -> None:
    rig.route("jobs")
    log, fix, r = rig.log, rig.tmp_path / "fixed", rig.r
    trigger = queue_trigger(
        "payments",
        "jobs",
        "payments",
        maxRetries=1,
        backoff={"initialSeconds": 1, "maxSeconds": 1},
        deadLetterStream="payments-failed",
    )
    await rig.fleet([trigger]).start()
    await group_ready(r, "payments", "payments")
    entry = await r.xadd("payments", {"do": "fixable", "fix": str(fix), "n": "9", "log": str(log)})

    async def dead() -> list[tuple[bytes, dict[bytes, bytes]]]:
        return await r.xrange("payments-failed")  # type: ignore[no-any-return]

    letters = await until("a dead letter", dead, within=15)
    fields = letters[0][1]
    assert fields[b"ember-attempts"] == b"2" and fields[b"ember-invocation-id"] == entry
    assert b"HTTP 503" in fields[b"ember-error"] and fields[b"ember-trigger"] == b"t/payments"
    assert json.loads(fields[b"body"])["n"] == "9"  # the queue format: replayable as is
    assert float(fields[b"ember-dead-at"]) >= float(fields[b"ember-first"])
    assert [c["attempt"] for c in rig.calls()] == ["1", "2"]

    fix.touch()
    out = await redrive_cli(rig.redis.url, "--trigger", f"{NS}/payments")
    assert f"moved {entry.decode()}: HTTP 503" in out
    assert "1 dead letter(s) of Trigger t/payments (payments-failed)" in out
    await until("the redriven call", lambda: len(rig.calls()) == 3)
    await record_is(r, keys.trigger_keys(NS, "payments"), entry.decode(), "succeeded")
    assert rig.calls()[-1]["attempt"] == "1"  # attempts reset
    assert await r.xlen("payments-failed") == 0


async def test_sources_come_and_go_while_the_dispatcher_runs(rig: Rig) -> None:
    """Twenty queue Triggers arriving in one burst (an informer's first list)
    get one runner each; a deleted one stops reading its stream."""
    rig.route("jobs")
    log, r = rig.log, rig.r
    d = await rig.fleet([]).start()
    triggers = [queue_trigger(f"q{i}", "jobs", f"s{i}") for i in range(20)]
    for obj in triggers:
        d.sources.apply("Trigger", "ADDED", obj)
    for i in range(20):
        await group_ready(r, f"s{i}", f"q{i}")
    assert sorted(k[2] for k in d.runners) == sorted(f"q{i}" for i in range(20))
    for i in range(20):
        await r.xadd(f"s{i}", {"do": "ok", "n": str(i), "log": str(log)})
    await rig.logged(20)  # one call per stream
    await asyncio.sleep(0.3)
    assert sorted(int(c["n"]) for c in rig.calls()) == list(range(20))  # no doubles

    d.sources.apply("Trigger", "DELETED", triggers[0])
    await until("its runner stopped", lambda: ("trigger", NS, "q0") not in d.runners)
    await r.xadd("s0", {"do": "ok", "n": "late", "log": str(log)})
    await r.xadd("s1", {"do": "ok", "n": "21", "log": str(log)})
    await until("the live trigger ran", lambda: any(c["n"] == "21" for c in rig.calls()))
    await asyncio.sleep(0.5)
    assert not any(c["n"] == "late" for c in rig.calls())
