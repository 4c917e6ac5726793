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
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from ember_operator.api.v1alpha1 import MissedRuns

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


@dataclass(frozen=True)
class Plan:
    """What to do at ``now``: the ticks to fire in order, how many ticks
    were missed (counted up to a bound), and the new ``through``: every tick
    at or before it is accounted for (fired or skipped)."""

    fire: tuple[float, ...]
    missed: int
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
    missed_last = schedule.last_at_or_before(cutoff) if through < cutoff else None
    missed = 0
    fire: list[float] = []
    if missed_last is not None and missed_last > through:
        for _ in schedule.ticks(through, missed_last):
            missed += 1
            if missed >= MAX_COUNTED:
                break
        if missed_runs == MissedRuns.RUN_ONCE:
            fire.append(missed_last)
        through = missed_last
    fire.extend(schedule.ticks(through, now))
    return Plan(tuple(fire), missed, fire[-1] if fire else through)
