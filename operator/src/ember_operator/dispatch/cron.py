"""Cron math, pure: a schedule's ticks as UTC instants, and which of them
to fire after a pause (the missed-run policy).

The cron expression is read by ``cronsim`` (five fields, or six with
seconds first) in the Trigger's IANA time zone (``zoneinfo``), so the
operator's status check (``check_schedule``) and the scheduler read an
expression the same way. Across DST changes cronsim follows Debian's cron:
a job at a fixed time in the skipped hour runs right after the change, one
in the repeated hour runs once; jobs that run every minute or more often
follow real time. A tick is a whole second since the epoch (a float, as
``time.time()`` gives): distinct instants, whatever the wall clock says.

No clock and no I/O here: the scheduler passes ``now`` in, and the tests
do the same with any instant they like.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError
from pydantic import ValidationError

from ember_operator.api.v1alpha1 import MissedRuns, TriggerSpec

# A tick late by at most this much still fires: a restart or a failover is
# not an outage. Older ticks are missed, and the Trigger's policy decides.
DEFAULT_GRACE_SECONDS = 60.0
# An epoch to check that an expression ever fires (cronsim looks 50 years ahead).
_PROBE = datetime(2001, 1, 1, tzinfo=UTC)


class ScheduleError(ValueError):
    """A schedule that cannot run; ``field`` is the spec field to fix."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def _zone(timezone: str) -> ZoneInfo:
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError, OSError) as e:  # OSError: a directory
        raise ScheduleError(
            "spec.schedule.timezone", f"unknown time zone {timezone!r} (an IANA name, e.g. UTC)"
        ) from e


@dataclass(frozen=True)
class Schedule:
    """One parsed cron expression in one time zone."""

    cron: str  # whitespace-normalized
    timezone: str
    zone: ZoneInfo = field(compare=False, repr=False)

    @property
    def fingerprint(self) -> str:
        """Names the schedule, not the Trigger: a new expression or zone
        starts a new history (no catch-up across a change of schedule)."""
        digest = hashlib.sha256(f"{self.cron}\0{self.timezone}".encode())
        return digest.hexdigest()[:16]

    def next_after(self, t: float) -> float | None:
        """The first tick strictly after ``t``; None if it never fires again."""
        it = CronSim(self.cron, datetime.fromtimestamp(math.floor(t), self.zone))
        for _ in range(4):  # a DST fold can hand back an instant at or before t
            try:
                tick = next(it).timestamp()
            except StopIteration:
                return None
            if tick > t:
                return tick
        return None

    def last_at_or_before(self, t: float) -> float | None:
        """The latest tick at or before ``t``; None if there is none (in 50 years)."""
        start = datetime.fromtimestamp(math.floor(t) + 1, self.zone)
        it = CronSim(self.cron, start, reverse=True)
        for _ in range(4):
            try:
                tick = next(it).timestamp()
            except StopIteration:
                return None
            if tick <= t:
                return tick
        return None

    def ticks(self, after: float, upto: float) -> Iterator[float]:
        """Every tick in (after, upto], in order."""
        t = self.next_after(after)
        while t is not None and t <= upto:
            yield t
            t = self.next_after(t)


def parse(cron: str, timezone: str = "UTC") -> Schedule:
    """A Schedule, or ScheduleError naming the field and cronsim's (or the
    zone database's) complaint."""
    zone = _zone(timezone)
    expr = " ".join(cron.split())
    try:
        it = CronSim(expr, _PROBE.astimezone(zone))
        next(it)
    except CronSimError as e:
        raise ScheduleError("spec.schedule.cron", f"{e} in {expr!r}") from e
    except StopIteration as e:
        raise ScheduleError("spec.schedule.cron", f"{expr!r} never fires") from e
    return Schedule(expr, timezone, zone)


def check_schedule(cron: str, timezone: str) -> ScheduleError | None:
    """What the operator reports: None when the scheduler can run it."""
    try:
        parse(cron, timezone)
    except ScheduleError as e:
        return e
    return None


def tick_iso(tick: float) -> str:
    """A tick as the scheduler names it (idempotency keys, headers): UTC, seconds."""
    return datetime.fromtimestamp(tick, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def idempotency_key(namespace: str, name: str, tick: float) -> str:
    """What makes a tick fire once, whatever fires it and however often."""
    return f"cron/{namespace}/{name}/{tick_iso(tick)}"


MIN_LEDGER_TTL = 7 * 86400


def ledger_ttl(schedule: Schedule, now: float) -> int:
    """How long a Trigger's ledger outlives its last write: a week, or
    three intervals of a rarer schedule."""
    nxt = schedule.next_after(now)
    return int(max(MIN_LEDGER_TTL, 3 * (nxt - now if nxt is not None else 0)))


@dataclass(frozen=True)
class Plan:
    """What to do at ``now``: the ticks to fire, in order; the ticks missed
    (counted up to a bound) and the latest of them; and ``through``: once
    ``fire`` has fired, every tick up to it is accounted for."""

    fire: tuple[float, ...]
    missed: int
    latest_missed: float | None
    through: float


MAX_COUNTED = 1000  # missed ticks are counted (for the log) up to this many


def plan(
    schedule: Schedule,
    through: float,
    now: float,
    *,
    missed_runs: MissedRuns = MissedRuns.SKIP,
    grace: float = DEFAULT_GRACE_SECONDS,
) -> Plan:
    """The ticks in (through, now]: those late by at most ``grace`` fire;
    older ones are missed, and RunOnce fires the latest of them first."""
    cutoff = now - grace
    latest = schedule.last_at_or_before(cutoff) if through < cutoff else None
    if latest is None or latest <= through:
        fire = tuple(schedule.ticks(through, now))
        return Plan(fire, 0, None, fire[-1] if fire else through)
    missed = 0
    for _ in schedule.ticks(through, latest):
        missed += 1
        if missed >= MAX_COUNTED:
            break
    fire = (latest,) if missed_runs == MissedRuns.RUN_ONCE else ()
    fire += tuple(schedule.ticks(latest, now))
    return Plan(fire, missed, latest, fire[-1] if fire else latest)


@dataclass(frozen=True)
class ScheduledTrigger:
    namespace: str
    name: str
    function: str
    schedule: Schedule
    payload: Mapping[str, Any] | None = None
    missed_runs: MissedRuns = MissedRuns.SKIP
    uid: str = ""

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    @property
    def fingerprint(self) -> str:
        return f"{self.schedule.fingerprint}/{self.uid}"

    def body(self) -> bytes:
        return json.dumps(self.payload if self.payload is not None else {}).encode()


def scheduled_trigger(obj: Mapping[str, Any]) -> ScheduledTrigger | None:
    """A Trigger object as the scheduler sees it: None for other kinds;
    ScheduleError for a schedule that cannot run (its status says so)."""
    meta = obj.get("metadata") or {}
    raw = obj.get("spec") or {}
    if not isinstance(raw, Mapping) or raw.get("schedule") is None:
        return None
    try:
        spec = TriggerSpec.model_validate(raw)
    except ValidationError as e:
        raise ScheduleError("spec", str(e)) from e
    s = spec.schedule
    assert s is not None
    return ScheduledTrigger(
        namespace=str(meta.get("namespace") or ""),
        name=str(meta.get("name") or ""),
        function=spec.function,
        schedule=parse(s.cron, s.timezone),
        payload=s.payload,
        missed_runs=s.missed_runs,
        uid=str(meta.get("uid") or ""),
    )
