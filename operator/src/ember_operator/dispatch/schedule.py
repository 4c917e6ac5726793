"""The cron scheduler: each ``schedule`` Trigger fires at each tick of its
cron expression, exactly once, with its payload as the JSON body.

Firing is ``Invocations.submit`` with the idempotency key
``cron/<namespace>/<trigger>/<tick>``; the store makes key and submission
one atomic step, so every dispatcher replica runs a Scheduler and fires
every tick, and a tick still makes one invocation. No lease, no leader.

A small *ledger* per Trigger in Redis keeps the latest tick accounted for
(fired, or skipped as missed) and a fingerprint of its schedule. A
Scheduler that starts (or meets a Trigger) fires every tick since then
that is late by at most ``grace`` (60 s): a restart or a failover leaves
no gap, and the keys dedupe what another replica fired. Older ticks were
missed, and ``missedRuns`` decides (``cron.plan``). No ledger (a new
Trigger or schedule): it starts from now.

One task (``run``) sleeps until the next tick due over all Triggers, or a
Trigger change; nothing polls per Trigger. A failed submission (Redis
down) is retried with backoff; ticks that wait past the grace are missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from redis.asyncio import Redis

from ember_operator.api.v1alpha1 import MissedRuns
from ember_operator.dispatch.cron import (
    DEFAULT_GRACE_SECONDS,
    MAX_COUNTED,
    ScheduledTrigger,
    ScheduleError,
    idempotency_key,
    ledger_ttl,
    plan,
    scheduled_trigger,
    tick_iso,
)
from ember_operator.dispatch.schedule_ledger import Key, Ledger, RedisLedger
from ember_runtime import logs

SOURCE = "schedule"
HEADERS = {"content-type": "application/json"}
MAX_SLEEP = 30.0  # re-read the wall clock at least this often (it may jump)
MAX_RETRY_SECONDS = 30.0


class Submitter(Protocol):
    """What firing needs of the async store (``store.Invocations``)."""

    async def submit(
        self,
        namespace: str,
        function: str,
        body: bytes,
        headers: Mapping[str, str],
        *,
        idempotency_key: str | None = None,
        source: str = ...,
    ) -> tuple[str, bool]: ...


@dataclass
class _Entry:
    trigger: ScheduledTrigger
    through: float | None = None  # None: the ledger is not read yet
    retry_at: float | None = None
    failures: int = 0
    next: tuple[float, float | None] | None = None  # (through, the tick after it)

    def wake_at(self, now: float) -> float | None:
        if self.retry_at is not None:
            return self.retry_at
        if self.through is None:
            return now
        if self.next is None or self.next[0] != self.through:  # cronsim is not free
            self.next = (self.through, self.trigger.schedule.next_after(self.through))
        return self.next[1]


class Scheduler:
    """Fires the schedule Triggers it is given (``apply`` from an informer,
    or ``set_triggers``/``upsert``/``remove``) while ``run`` runs."""

    def __init__(
        self,
        submitter: Submitter,
        redis: Redis | None = None,
        *,
        clock: Callable[[], float] = time.time,
        grace: float = DEFAULT_GRACE_SECONDS,
        ledger: Ledger | None = None,
    ) -> None:
        if ledger is None:
            if redis is None:
                raise ValueError("a Scheduler needs redis (or a ledger)")
            ledger = RedisLedger(redis)
        self.submitter = submitter
        self.ledger = ledger
        self.clock = clock
        self.grace = grace
        self.entries: dict[Key, _Entry] = {}
        # The Functions that exist (apply's Function events). Once the
        # dispatcher says it has listed them (functions_listed), a schedule
        # of a missing Function skips its ticks, as the async API refuses
        # calls to it, instead of queueing them where nothing reads.
        self.functions: set[Key] = set()
        self.functions_known = False
        self._forget: set[Key] = set()
        self._wake = asyncio.Event()

    # --- what to fire ---------------------------------------------------

    def upsert(self, trigger: ScheduledTrigger) -> None:
        entry = self.entries.get(trigger.key)
        if entry is not None and entry.trigger.fingerprint == trigger.fingerprint:
            entry.trigger = trigger  # a new payload, function or policy: same history
        else:
            self.entries[trigger.key] = _Entry(trigger)  # read the ledger again
        self._forget.discard(trigger.key)
        self._wake.set()

    def remove(self, namespace: str, name: str) -> None:
        if self.entries.pop((namespace, name), None) is not None:
            self._forget.add((namespace, name))
            self._wake.set()

    def set_triggers(self, triggers: Iterable[ScheduledTrigger]) -> None:
        wanted = {t.key: t for t in triggers}
        for key in list(self.entries):
            if key not in wanted:
                self.remove(*key)
        for t in wanted.values():
            self.upsert(t)

    def functions_listed(self) -> None:
        """Every Function is known now (the informer listed them once)."""
        self.functions_known = True

    def apply(self, kind: str, event: str, obj: Mapping[str, Any]) -> None:
        """An informer's event on a Trigger or a Function (others are ignored)."""
        meta = obj.get("metadata") or {}
        ns, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
        gone = event == "DELETED" or bool(meta.get("deletionTimestamp"))
        if kind == "Function":
            (self.functions.discard if gone else self.functions.add)((ns, name))
        if kind != "Trigger":
            return
        trigger = None
        if not gone:
            try:
                trigger = scheduled_trigger(obj)
            except ScheduleError as e:
                logs.emit("warning", "schedule not scheduled", trigger=f"{ns}/{name}", error=str(e))
        if trigger is None:
            self.remove(ns, name)
        else:
            self.upsert(trigger)

    # --- firing -----------------------------------------------------------

    async def run(self) -> None:
        """Fire ticks as they come, until cancelled."""
        while True:
            self._wake.clear()
            try:
                wake_at = await self.step()
            except Exception as e:  # one bad step must not stop every schedule
                logs.emit("error", "schedule step failed", error=repr(e))
                wake_at = self.clock() + 1
            delay = MAX_SLEEP if wake_at is None else min(MAX_SLEEP, wake_at - self.clock())
            if delay <= 0:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=delay + 0.002)

    async def step(self) -> float | None:
        """Fire every tick due now; returns when the next one is due."""
        now = self.clock()
        for key in list(self._forget):
            self._forget.discard(key)
            await self._quietly(self.ledger.forget(key), f"forget {key}")
        due = [e for e in self.entries.values() if (e.wake_at(now) or now + 1) <= now]
        if due:
            await asyncio.gather(*(self._fire_due(e, now) for e in due))
        times = [t for e in self.entries.values() if (t := e.wake_at(now)) is not None]
        return min(times) if times else None

    async def _fire_due(self, entry: _Entry, now: float) -> None:
        t = entry.trigger
        entry.retry_at = None
        record = entry.through is None  # a new Trigger's ledger starts now
        if entry.through is None:
            try:
                loaded = await self.ledger.load(t.key, t.fingerprint)
            except Exception as e:  # Redis down: try again soon
                self._failed(entry, now, f"reading its ledger: {e!r}")
                return
            entry.through = now if loaded is None else loaded
            record = loaded is None
        if self.entries.get(t.key) is not entry:
            return  # removed or replaced meanwhile
        before = entry.through
        p = plan(t.schedule, before, now, missed_runs=t.missed_runs, grace=self.grace)
        if p.latest_missed is not None:
            logs.emit(
                "warning",
                "schedule ticks missed",
                trigger=f"{t.namespace}/{t.name}",
                missed=f"{p.missed}+" if p.missed >= MAX_COUNTED else p.missed,
                latest=tick_iso(p.latest_missed),
                missed_runs=t.missed_runs.value,
            )
            if t.missed_runs == MissedRuns.SKIP:
                entry.through = p.latest_missed
        fire: tuple[float, ...] = p.fire
        if self.functions_known and (t.namespace, t.function) not in self.functions and fire:
            entry.through, fire = fire[-1], ()  # skipped: accounted for, not queued
            logs.emit(
                "warning",
                "schedule tick skipped: no such Function",
                trigger=f"{t.namespace}/{t.name}",
                function=f"{t.namespace}/{t.function}",
                tick=tick_iso(entry.through),
            )
        for tick in fire:
            try:
                invocation, created = await self.submitter.submit(
                    t.namespace,
                    t.function,
                    t.body(),
                    HEADERS,
                    idempotency_key=idempotency_key(t.namespace, t.name, tick),
                    source=SOURCE,
                )
            except Exception as e:  # the store is down: the tick waits
                self._failed(entry, now, f"firing {tick_iso(tick)}: {e!r}")
                break
            entry.through, entry.failures = tick, 0
            if created:  # another replica logged the others
                logs.emit(
                    "info",
                    "schedule fired",
                    request_id=invocation,
                    trigger=f"{t.namespace}/{t.name}",
                    function=f"{t.namespace}/{t.function}",
                    tick=tick_iso(tick),
                )
        if record or entry.through != before:
            ttl = ledger_ttl(t.schedule, now)
            await self._quietly(
                self.ledger.advance(t.key, t.fingerprint, entry.through, ttl),
                f"record {t.namespace}/{t.name}",
            )

    def _failed(self, entry: _Entry, now: float, what: str) -> None:
        entry.failures += 1
        entry.retry_at = now + min(MAX_RETRY_SECONDS, 0.5 * 2 ** (entry.failures - 1))
        t = entry.trigger
        logs.emit(
            "warning",
            "schedule retrying",
            trigger=f"{t.namespace}/{t.name}",
            error=what,
            attempt=entry.failures,
        )

    @staticmethod
    async def _quietly(aw: Any, what: str) -> None:
        try:
            await aw
        except Exception as e:  # the ledger is a hint; keys dedupe
            logs.emit("warning", "schedule ledger write failed", what=what, error=repr(e))
