"""A per-second schedule Trigger end to end on loopback: the scheduler
submits each tick to the real store, a dispatcher delivers it through the
gateway to a real runtime, and the function sees every tick once, in
order, across a restart of the whole dispatcher process (scheduler and
dispatcher) in between."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime
from pathlib import Path

import pytest
from redis.asyncio import Redis

from ember_operator.dispatch.schedule import Scheduler
from ember_operator.dispatch.store import Invocations
from tests.integration.dispatch.harness import NS, Rig, fn_object

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


def schedule_trigger(log: Path) -> dict[str, object]:
    return {
        "kind": "Trigger",
        "metadata": {"namespace": NS, "name": "beat", "uid": "u-beat"},
        "spec": {
            "function": "jobs",
            "schedule": {"cron": "* * * * * *", "payload": {"do": "ok", "log": str(log)}},
        },
    }


class Process:
    """What one dispatcher replica runs: a Scheduler fed by the Trigger,
    and a Dispatcher (the fleet's) delivering what it submits."""

    def __init__(self, url: str, trigger: dict[str, object]) -> None:
        self.redis = Redis.from_url(url)
        self.scheduler = Scheduler(Invocations(self.redis), self.redis)
        # As the dispatcher's informers would: the Function, the Trigger, then "listed".
        self.scheduler.apply("Function", "ADDED", fn_object("jobs"))
        self.scheduler.apply("Trigger", "ADDED", trigger)
        self.scheduler.functions_listed()
        self.task = asyncio.create_task(self.scheduler.run())

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        await self.redis.aclose()


async def test_each_tick_reaches_the_function_once_across_a_restart(rig: Rig) -> None:
    rig.route("jobs")
    trigger = schedule_trigger(rig.log)
    dispatchers = rig.fleet([fn_object("jobs")])
    url = rig.redis.url

    d1, p1 = await dispatchers.start(), Process(url, trigger)
    await asyncio.sleep(3.2)
    await p1.stop()
    await dispatchers.stop(d1)  # graceful: what was read finishes
    await asyncio.sleep(1.5)  # down across a tick or two (well within the grace)
    d2, p2 = await dispatchers.start(), Process(url, trigger)
    await asyncio.sleep(3.2)
    await p2.stop()
    await asyncio.sleep(1.0)  # the last submissions are delivered
    await dispatchers.stop(d2)

    calls = rig.calls()
    keys = [c["key"] for c in calls]
    assert len(keys) == len(set(keys)), f"a tick ran twice: {keys}"
    assert all(k.startswith(f"cron/{NS}/beat/") for k in keys), keys
    ticks = sorted(int(datetime.fromisoformat(k.rsplit("/", 1)[1]).timestamp()) for k in keys)
    assert ticks == list(range(ticks[0], ticks[-1] + 1)), f"a gap in {ticks}"
    assert len(ticks) >= 6
    assert {c["attempt"] for c in calls} == {"1"}
