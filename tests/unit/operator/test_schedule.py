"""The Scheduler on a fake clock, with an in-memory ledger and submitter:
what fires when, what a restart resumes from, a schedule change, removal,
a store that fails, and Trigger objects read as the informer hands them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from ember_operator.api.v1alpha1 import MissedRuns
from ember_operator.dispatch.cron import ScheduledTrigger, ScheduleError, parse, scheduled_trigger
from ember_operator.dispatch.schedule import Scheduler
from ember_operator.dispatch.schedule_ledger import Key

pytestmark = pytest.mark.unit

T0 = 1_767_268_800.0  # 2026-01-01T12:00:00Z


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Store:
    """Dedupes by idempotency key, as the real store does."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, bytes, str | None]] = []
        self.keys: dict[str, str] = {}
        self.down = False

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
        if self.down:
            raise ConnectionError("redis is down")
        assert source == "schedule" and headers["content-type"] == "application/json"
        self.calls.append((namespace, function, body, idempotency_key))
        assert idempotency_key is not None
        if idempotency_key in self.keys:
            return self.keys[idempotency_key], False
        self.keys[idempotency_key] = f"inv{len(self.keys)}"
        return self.keys[idempotency_key], True

    def fired(self) -> list[str]:
        return sorted(k.rsplit("/", 1)[1] for k in self.keys)


class MemoryLedger:
    def __init__(self) -> None:
        self.rows: dict[Key, tuple[str, float]] = {}

    async def load(self, key: Key, fingerprint: str) -> float | None:
        row = self.rows.get(key)
        return row[1] if row is not None and row[0] == fingerprint else None

    async def advance(self, key: Key, fingerprint: str, through: float, ttl: int) -> None:
        row = self.rows.get(key)
        if row is None or row[0] != fingerprint or row[1] < through:
            self.rows[key] = (fingerprint, through)

    async def forget(self, key: Key) -> None:
        self.rows.pop(key, None)


def every(
    cron: str = "* * * * *", missed: MissedRuns = MissedRuns.SKIP, name: str = "tick"
) -> ScheduledTrigger:
    return ScheduledTrigger("ns", name, "fn", parse(cron), {"x": 1}, missed, uid="u1")


def scheduler(store: Store, ledger: MemoryLedger, clock: Clock) -> Scheduler:
    return Scheduler(store, clock=clock, ledger=ledger)


async def test_a_new_trigger_starts_from_now_and_fires_each_tick() -> None:
    store, ledger, clock = Store(), MemoryLedger(), Clock(T0 + 30)
    s = scheduler(store, ledger, clock)
    s.upsert(every())
    assert await s.step() == T0 + 60  # nothing before now fires
    assert store.calls == []
    for minute in (1, 2, 3):
        clock.now = T0 + 60 * minute + 0.01
        assert await s.step() == T0 + 60 * (minute + 1)
    assert store.fired() == ["2026-01-01T12:01:00Z", "2026-01-01T12:02:00Z", "2026-01-01T12:03:00Z"]
    ns, fn, body, key = store.calls[0]
    assert (ns, fn, body, key) == ("ns", "fn", b'{"x": 1}', "cron/ns/tick/2026-01-01T12:01:00Z")
    assert ledger.rows[("ns", "tick")][1] == T0 + 180


async def test_a_restart_within_the_grace_leaves_no_gap() -> None:
    store, ledger, clock = Store(), MemoryLedger(), Clock(T0 + 0.5)
    first = scheduler(store, ledger, clock)
    first.upsert(every())
    await first.step()  # 12:00 fired? no: it was before the Trigger was seen
    clock.now = T0 + 60.1
    await first.step()
    # Down from 12:01:10 to 12:02:40: 12:02 is 40 s late, still fires.
    clock.now = T0 + 160
    second = scheduler(store, ledger, clock)
    second.upsert(every())
    await second.step()
    assert store.fired() == ["2026-01-01T12:01:00Z", "2026-01-01T12:02:00Z"]


@pytest.mark.parametrize(
    ("policy", "expect"),
    [
        (MissedRuns.SKIP, ["12:01", "12:09", "12:10"]),
        (MissedRuns.RUN_ONCE, ["12:01", "12:08", "12:09", "12:10"]),
    ],
)
async def test_after_an_outage_the_policy_decides(policy: MissedRuns, expect: list[str]) -> None:
    store, ledger, clock = Store(), MemoryLedger(), Clock(T0 + 0.5)
    first = scheduler(store, ledger, clock)
    first.upsert(every(missed=policy))
    await first.step()
    clock.now = T0 + 60.1
    await first.step()
    # 12:09:30, down since 12:01: 12:02..12:08 missed, 12:09 is 30 s late and fires.
    clock.now = T0 + 9 * 60 + 30
    second = scheduler(store, ledger, clock)
    second.upsert(every(missed=policy))
    assert await second.step() == T0 + 600
    clock.now = T0 + 600
    await second.step()
    assert store.fired() == [f"2026-01-01T{hhmm}:00Z" for hhmm in expect]


async def test_two_schedulers_fire_each_tick_once() -> None:
    store, ledger, clock = Store(), MemoryLedger(), Clock(T0 + 0.5)
    a, b = scheduler(store, ledger, clock), scheduler(store, ledger, clock)
    for s in (a, b):
        s.upsert(every("*/10 * * * * *"))
        await s.step()
    for i in range(1, 7):
        clock.now = T0 + 10 * i
        await a.step()
        await b.step()
    assert len(store.calls) == 12 and len(store.keys) == 6


async def test_a_new_schedule_starts_a_new_history_and_a_removed_one_is_forgotten() -> None:
    store, ledger, clock = Store(), MemoryLedger(), Clock(T0 + 0.5)
    s = scheduler(store, ledger, clock)
    s.upsert(every())
    await s.step()
    clock.now = T0 + 60
    await s.step()
    # Same schedule, new payload: no reload, no refire.
    s.upsert(ScheduledTrigger("ns", "tick", "fn", parse("* * * * *"), {"x": 2}, uid="u1"))
    assert await s.step() == T0 + 120
    # Hourly now: the minute ticks since are not this schedule's to catch up.
    clock.now = T0 + 100
    s.upsert(every("0 * * * *"))
    assert await s.step() == T0 + 3600
    assert store.fired() == ["2026-01-01T12:01:00Z"]
    s.remove("ns", "tick")
    assert await s.step() is None
    assert ledger.rows == {}


async def test_a_failing_store_is_retried_and_late_ticks_follow_the_policy() -> None:
    store, ledger, clock = Store(), MemoryLedger(), Clock(T0 + 0.5)
    s = scheduler(store, ledger, clock)
    s.upsert(every("* * * * * *"))
    await s.step()
    store.down = True
    clock.now = T0 + 1
    assert await s.step() == T0 + 1.5  # retried in 0.5 s, then 1, 2, ...
    clock.now = T0 + 1.5
    assert await s.step() == T0 + 2.5
    store.down = False
    clock.now = T0 + 3
    await s.step()
    assert store.fired() == [f"2026-01-01T12:00:0{i}Z" for i in (1, 2, 3)]


def body(spec: dict[str, Any], **meta: Any) -> dict[str, Any]:
    return {
        "metadata": {"namespace": "ns", "name": "t", "uid": "u", **meta},
        "spec": {"function": "fn", **spec},
    }


def test_trigger_objects_are_read_as_schedules() -> None:
    t = scheduled_trigger(
        body(
            {
                "schedule": {
                    "cron": "0 9 * * *",
                    "timezone": "Europe/Berlin",
                    "missedRuns": "RunOnce",
                }
            }
        )
    )
    assert t is not None and t.key == ("ns", "t") and t.missed_runs == MissedRuns.RUN_ONCE
    assert t.schedule.timezone == "Europe/Berlin" and t.body() == b"{}"
    assert scheduled_trigger(body({"http": {"path": "/x"}})) is None
    with pytest.raises(ScheduleError) as info:
        scheduled_trigger(body({"schedule": {"cron": "61 * * * *"}}))
    assert info.value.field == "spec.schedule.cron"


async def test_informer_events_add_change_and_remove() -> None:
    store, ledger, clock = Store(), MemoryLedger(), Clock(T0 + 0.5)
    s = scheduler(store, ledger, clock)
    s.apply("Trigger", "ADDED", body({"schedule": {"cron": "* * * * *"}}))
    s.apply("Function", "ADDED", body({}))
    assert list(s.entries) == [("ns", "t")]
    s.apply("Trigger", "MODIFIED", body({"schedule": {"cron": "61 * * * *"}}))  # now invalid
    assert s.entries == {}
    s.apply("Trigger", "MODIFIED", body({"schedule": {"cron": "* * * * *"}}))
    s.apply("Trigger", "MODIFIED", body({"schedule": {"cron": "* * * * *"}}, deletionTimestamp="x"))
    assert s.entries == {}
    s.set_triggers([every(name="a"), every(name="b")])
    s.set_triggers([every(name="b")])
    assert list(s.entries) == [("ns", "b")]


async def test_once_functions_are_listed_a_missing_functions_ticks_are_skipped() -> None:
    store, ledger, clock = Store(), MemoryLedger(), Clock(T0 + 0.5)
    s = scheduler(store, ledger, clock)
    s.apply("Trigger", "ADDED", body({"schedule": {"cron": "* * * * *"}}))
    await s.step()
    # Not told yet which Functions exist: it fires.
    clock.now = T0 + 60
    await s.step()
    assert store.fired() == ["2026-01-01T12:01:00Z"]
    # Listed, without "fn": skipped (and accounted for), not queued.
    s.apply("Function", "ADDED", {"metadata": {"namespace": "ns", "name": "other"}})
    s.functions_listed()
    clock.now = T0 + 120
    assert await s.step() == T0 + 180
    assert len(store.keys) == 1 and ledger.rows[("ns", "t")][1] == T0 + 120
    # It comes: the next tick fires; it goes: skipped again.
    s.apply("Function", "ADDED", {"metadata": {"namespace": "ns", "name": "fn"}})
    clock.now = T0 + 180
    await s.step()
    s.apply("Function", "DELETED", {"metadata": {"namespace": "ns", "name": "fn"}})
    clock.now = T0 + 240
    await s.step()
    assert store.fired() == ["2026-01-01T12:01:00Z", "2026-01-01T12:03:00Z"]
