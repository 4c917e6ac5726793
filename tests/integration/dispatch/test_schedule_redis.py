"""Cron against a real Redis and the real async store: a per-second
schedule fired by two schedulers at once, one of them restarted midway,
makes one invocation per tick with no gap; after a longer outage, Skip and
RunOnce differ by exactly the latest missed tick."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Mapping
from datetime import datetime

import pytest
from redis.asyncio import Redis

from ember_operator.api.v1alpha1 import MissedRuns
from ember_operator.dispatch import keys
from ember_operator.dispatch.cron import ScheduledTrigger, parse, tick_iso
from ember_operator.dispatch.schedule import Scheduler
from ember_operator.dispatch.schedule_ledger import ledger_key
from ember_operator.dispatch.store import Invocations
from tests.redis_harness import RedisServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

NS, FN, NAME = "ns", "fn", "every-second"


class Recorder:
    """The real store, with a note of what each submission did."""

    def __init__(self, redis: Redis) -> None:
        self.store = Invocations(redis)
        self.created: list[str] = []  # ticks (ISO) this one created
        self.seen: list[str] = []

    async def submit(
        self,
        namespace: str,
        function: str,
        body: bytes,
        headers: Mapping[str, str],
        *,
        idempotency_key: str | None = None,
        source: str = "async",
    ) -> tuple[str, bool]:
        got = await self.store.submit(
            namespace, function, body, headers, idempotency_key=idempotency_key, source=source
        )
        tick = (idempotency_key or "").rsplit("/", 1)[1]
        self.seen.append(tick)
        if got[1]:
            self.created.append(tick)
        return got


class Running:
    """One scheduler "process": its own Redis client, its own task."""

    def __init__(
        self, url: str, trigger: ScheduledTrigger, grace: float, clock: Callable[[], float]
    ) -> None:
        self.redis = Redis.from_url(url)
        self.recorder = Recorder(self.redis)
        self.scheduler = Scheduler(self.recorder, self.redis, grace=grace, clock=clock)
        self.scheduler.upsert(trigger)
        self.task = asyncio.create_task(self.scheduler.run())

    async def stop(self) -> None:
        self.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self.task
        await self.redis.aclose()


def every_second(missed: MissedRuns = MissedRuns.SKIP) -> ScheduledTrigger:
    return ScheduledTrigger(NS, NAME, FN, parse("* * * * * *"), {"n": 1}, missed, uid="u")


def seconds(ticks: list[str]) -> list[int]:
    return sorted(int(datetime.fromisoformat(t).timestamp()) for t in ticks)


async def test_two_schedulers_and_a_restart_fire_each_tick_once(redis: RedisServer) -> None:
    trigger = every_second()
    a = Running(redis.url, trigger, 60, time.time)
    b = Running(redis.url, trigger, 60, time.time)
    await asyncio.sleep(3.2)
    await b.stop()  # b "restarts": down for 2 s, then a new process
    await asyncio.sleep(2)
    b2 = Running(redis.url, trigger, 60, time.time)
    await asyncio.sleep(3.2)
    await a.stop()  # and a goes for good: b2 alone keeps the beat
    await asyncio.sleep(2.2)
    await b2.stop()

    created = [*a.recorder.created, *b.recorder.created, *b2.recorder.created]
    ticks = seconds(created)
    assert len(ticks) == len(set(ticks)), "a tick created twice"
    assert ticks == list(range(ticks[0], ticks[-1] + 1)), f"a gap in {ticks}"
    assert len(ticks) >= 9
    # The duplicates were real: both fired the same ticks, and the store kept one.
    assert len(a.recorder.seen) + len(b.recorder.seen) + len(b2.recorder.seen) > len(ticks)
    check = Redis.from_url(redis.url)
    try:
        assert await check.xlen(keys.function_keys(NS, FN).stream) == len(ticks)
        through = await check.hget(ledger_key(NS, NAME), "through")
        assert through is not None and int(float(through)) == ticks[-1]
    finally:
        await check.aclose()


@pytest.mark.parametrize("policy", [MissedRuns.SKIP, MissedRuns.RUN_ONCE])
async def test_after_a_longer_outage_the_policy_decides(
    redis: RedisServer, policy: MissedRuns
) -> None:
    grace = 1.5
    first = Running(redis.url, every_second(policy), grace, time.time)
    await asyncio.sleep(2.5)
    await first.stop()
    before = seconds(first.recorder.created)
    assert before, "nothing fired before the outage"
    await asyncio.sleep(4)  # ticks older than the grace are missed

    started: list[float] = []

    def clock() -> float:
        now = time.time()
        if not started:
            started.append(now)  # the instant the new scheduler plans from
        return now

    second = Running(redis.url, every_second(policy), grace, clock)
    await asyncio.sleep(2.5)
    await second.stop()
    after = seconds(second.recorder.created)

    cutoff = started[0] - grace
    latest_missed = math.floor(cutoff)
    on_time = [t for t in after if t > cutoff]
    assert on_time == list(range(latest_missed + 1, after[-1] + 1)), (tick_iso(cutoff), after)
    missed = range(before[-1] + 1, latest_missed + 1)
    assert len(missed) >= 2
    if policy == MissedRuns.RUN_ONCE:
        assert after == [latest_missed, *on_time]  # the latest missed tick, once
    else:
        assert after == on_time  # nothing from the outage
