"""At least once, never lost: a consumer killed mid-message leaves it to
another one after the visibility timeout, and 1,000 messages survive
dispatchers crashing and restarting under them."""

from __future__ import annotations

import asyncio
import collections

import pytest

from ember_operator.dispatch import keys
from ember_operator.dispatch.store import Invocations
from tests.integration.dispatch.harness import NS, Rig, counts_of, fn_object, status_of, until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


async def test_a_killed_consumer_s_messages_are_claimed_by_another(rig: Rig) -> None:
    rig.route("jobs")
    r = rig.r
    ids = [
        await rig.submit({"do": "sleep", "s": 0.6, "n": n, "log": str(rig.log)}) for n in range(3)
    ]
    pool = rig.fleet([fn_object("jobs")], visibility_timeout_seconds=1.0)
    first = await pool.start()
    await until("all three running", lambda: first.inflight == 3, within=10)
    await pool.kill(first)  # a crash: the calls are cut, nothing acknowledged
    slot = keys.function_keys(NS, "jobs")
    pending = await r.xpending(slot.stream, keys.GROUP)
    assert pending["pending"] == 3
    assert [c["name"] for c in pending["consumers"]] == [b"consumer-1"]

    loop = asyncio.get_running_loop()
    killed_at = loop.time()
    second = await pool.start()
    finals = [await rig.final(i, 20) for i in ids]
    assert [f["status"] for f in finals] == ["succeeded"] * 3
    # Not before the visibility timeout: the first consumer might have been alive.
    assert all(f["attempts"] == 1 for f in finals)
    assert loop.time() - killed_at >= 1.0
    assert counts_of(second)["claimed"] == 3
    assert (await r.xpending(slot.stream, keys.GROUP))["pending"] == 0
    assert await r.xlen(slot.stream) == 0
    # At least once: the cut calls ran too (the runtime finished them), and
    # the claimed copies ran again, carrying the same invocation id.
    await rig.logged(6, within=5)  # the cut calls finished
    seen = collections.Counter(c["id"] for c in rig.calls())
    assert seen == dict.fromkeys(ids, 2)


async def test_a_thousand_messages_through_crashing_dispatchers_lose_nothing(rig: Rig) -> None:
    """1,000 messages with idempotency keys; the dispatcher crashes (no
    drain) three times mid-run and a new one takes over: every message
    succeeds, each exactly one record, and a call repeated by a crash
    carries the same idempotency key (the function can tell)."""
    rig.route("jobs", concurrency=8)
    log, r = rig.log, rig.r
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

    pool = rig.fleet([fn_object("jobs")], visibility_timeout_seconds=1.0, concurrency=8)
    slot = keys.function_keys(NS, "jobs")
    kills = 0
    d = await pool.start()
    for _ in range(3):
        want = 150 * (kills + 1)
        await rig.logged(want, within=30)  # some progress
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
    calls = rig.calls()
    assert {c["n"] for c in calls} == set(range(total))
    repeated = collections.Counter(c["n"] for c in calls)
    dupes = {n: k for n, k in repeated.items() if k > 1}
    # Only calls cut by a crash run twice: at most one bound's worth per crash.
    assert len(dupes) <= kills * 8, dupes
    for c in calls:
        assert c["key"] == f"k{c['n']}" and c["id"] == ids[c["n"]]
    assert await r.xlen(slot.dead_letters) == 0


async def test_the_dispatcher_rides_out_a_redis_restart(rig: Rig) -> None:
    rig.route("jobs")
    await rig.dispatch()
    first = await rig.submit({"n": 1, "log": str(rig.log)})
    assert (await rig.final(first))["status"] == "succeeded"
    rig.redis.restart()  # the data survives (append-only), connections do not

    async def accepted() -> str | None:
        r = await rig.post({"n": 2, "log": str(rig.log)})
        return r.json()["invocationId"] if r.status_code == 202 else None  # 503 while away

    second = await until("the API takes submissions again", accepted, within=10, every=0.2)
    done = await rig.final(second, 20)
    assert done["status"] == "succeeded"
    assert (await status_of(rig.client, "jobs", first))["status"] == "succeeded"
    assert sorted(c["n"] for c in rig.calls()) == [1, 2]
