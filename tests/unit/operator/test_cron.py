"""Cron math on a fake clock: ticks as UTC instants in the Trigger's zone,
DST in Europe/Berlin, the optional seconds field, and which ticks fire
after a pause (Skip vs RunOnce)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ember_operator.api.v1alpha1 import MissedRuns
from ember_operator.dispatch.cron import (
    ScheduleError,
    check_schedule,
    parse,
    plan,
    tick_iso,
)

pytestmark = pytest.mark.unit


def at(text: str) -> float:
    """An instant from "YYYY-MM-DDTHH:MM:SSZ"."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


def ticks(cron: str, tz: str, after: str, upto: str) -> list[str]:
    return [tick_iso(t) for t in parse(cron, tz).ticks(at(after), at(upto))]


def test_ticks_are_read_in_the_triggers_zone() -> None:
    # 09:00 in Berlin is 08:00Z in winter and 07:00Z in summer.
    assert ticks("0 9 * * *", "Europe/Berlin", "2026-01-10T00:00:00Z", "2026-01-11T23:00:00Z") == [
        "2026-01-10T08:00:00Z",
        "2026-01-11T08:00:00Z",
    ]
    assert ticks("0 9 * * *", "Europe/Berlin", "2026-07-10T00:00:00Z", "2026-07-10T23:00:00Z") == [
        "2026-07-10T07:00:00Z"
    ]
    assert ticks("0 9 * * MON", "UTC", "2026-11-30T00:00:00Z", "2026-12-14T00:00:00Z") == [
        "2026-11-30T09:00:00Z",
        "2026-12-07T09:00:00Z",
    ]


def test_spring_forward_a_job_in_the_skipped_hour_runs_once_right_after() -> None:
    # 2026-03-29: Berlin jumps from 02:00 CET to 03:00 CEST (01:00Z); 02:30 never exists.
    assert ticks("30 2 * * *", "Europe/Berlin", "2026-03-28T12:00:00Z", "2026-03-30T12:00:00Z") == [
        "2026-03-29T01:00:00Z",
        "2026-03-30T00:30:00Z",
    ]
    # Backwards, the same instant is the latest tick (RunOnce picks it after an outage).
    s = parse("30 2 * * *", "Europe/Berlin")
    assert s.last_at_or_before(at("2026-03-29T01:10:00Z")) == at("2026-03-29T01:00:00Z")
    assert s.last_at_or_before(at("2026-03-29T00:59:00Z")) == at("2026-03-28T01:30:00Z")
    # Every 30 minutes follows real time: 01:30 CET, then 03:00 CEST.
    assert ticks(
        "*/30 * * * *", "Europe/Berlin", "2026-03-29T00:00:00Z", "2026-03-29T01:30:00Z"
    ) == ["2026-03-29T00:30:00Z", "2026-03-29T01:00:00Z", "2026-03-29T01:30:00Z"]


def test_fall_back_a_job_in_the_repeated_hour_runs_once() -> None:
    # 2026-10-25: Berlin goes from 03:00 CEST back to 02:00 CET (01:00Z); 02:30 happens twice.
    assert ticks("30 2 * * *", "Europe/Berlin", "2026-10-24T12:00:00Z", "2026-10-26T12:00:00Z") == [
        "2026-10-25T00:30:00Z",
        "2026-10-26T01:30:00Z",
    ]
    # ... and does not fire again when asked from inside the second 02:xx hour.
    s = parse("30 2 * * *", "Europe/Berlin")
    assert tick_iso(s.next_after(at("2026-10-25T01:10:00Z")) or 0) == "2026-10-26T01:30:00Z"
    assert tick_iso(s.last_at_or_before(at("2026-10-25T01:40:00Z")) or 0) == (
        "2026-10-25T00:30:00Z"
    )
    # Every 30 minutes fires in both 02:xx hours: they are distinct instants.
    assert ticks(
        "*/30 * * * *", "Europe/Berlin", "2026-10-25T00:00:00Z", "2026-10-25T01:30:00Z"
    ) == ["2026-10-25T00:30:00Z", "2026-10-25T01:00:00Z", "2026-10-25T01:30:00Z"]


def test_six_fields_put_seconds_first() -> None:
    assert ticks("*/20 * * * * *", "UTC", "2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z") == [
        "2026-01-01T00:00:20Z",
        "2026-01-01T00:00:40Z",
        "2026-01-01T00:01:00Z",
    ]
    s = parse("* * * * * *")
    assert s.next_after(at("2026-01-01T00:00:00Z") + 0.5) == at("2026-01-01T00:00:01Z")
    assert s.last_at_or_before(at("2026-01-01T00:00:05Z") + 0.9) == at("2026-01-01T00:00:05Z")


def test_next_after_is_strict_and_last_at_or_before_inclusive() -> None:
    s = parse("0 * * * *")
    assert s.next_after(at("2026-01-01T01:00:00Z")) == at("2026-01-01T02:00:00Z")
    assert s.last_at_or_before(at("2026-01-01T01:00:00Z")) == at("2026-01-01T01:00:00Z")
    assert s.last_at_or_before(at("2026-01-01T00:59:59Z")) == at("2026-01-01T00:00:00Z")


@pytest.mark.parametrize(
    ("cron", "tz", "field", "says"),
    [
        ("61 * * * *", "UTC", "spec.schedule.cron", "Bad minute"),
        ("* * 32 * *", "UTC", "spec.schedule.cron", "Bad day-of-month"),
        ("0 0 30 2 *", "UTC", "spec.schedule.cron", "Bad day-of-month"),
        ("* * * *", "UTC", "spec.schedule.cron", "Wrong number of fields"),
        ("* * * * *", "Mars/Olympus", "spec.schedule.timezone", "unknown time zone"),
        ("* * * * *", "Europe", "spec.schedule.timezone", "unknown time zone"),
    ],
)
def test_a_bad_schedule_names_its_field(cron: str, tz: str, field: str, says: str) -> None:
    err = check_schedule(cron, tz)
    assert isinstance(err, ScheduleError)
    assert err.field == field and says in err.message
    with pytest.raises(ScheduleError):
        parse(cron, tz)


def test_good_schedules_pass_and_whitespace_is_normalized() -> None:
    for cron in ("*/5 * * * *", "0 0 L * *", "0 9 * * MON#1", "*/10 * * * * *", "0 0 29 2 *"):
        assert check_schedule(cron, "Europe/Berlin") is None, cron
    a, b = parse("*/5  *  * * *"), parse("*/5 * * * *")
    assert a == b and a.fingerprint == b.fingerprint
    assert parse("*/5 * * * *", "Europe/Berlin").fingerprint != a.fingerprint


EVERY_MINUTE = parse("* * * * *")
T0 = at("2026-01-01T12:00:00Z")


def test_without_a_pause_every_tick_up_to_now_fires() -> None:
    p = plan(EVERY_MINUTE, T0, T0 + 60.2)
    assert p.fire == (T0 + 60,) and p.missed == 0 and p.through == T0 + 60
    p = plan(EVERY_MINUTE, T0, T0 + 180, grace=150)
    assert p.fire == (T0 + 60, T0 + 120, T0 + 180) and p.missed == 0
    # Nothing due: nothing fires and ``through`` stays.
    assert plan(EVERY_MINUTE, T0, T0 + 59) == plan(EVERY_MINUTE, T0, T0 + 59)
    assert plan(EVERY_MINUTE, T0, T0 + 59).fire == ()
    assert plan(EVERY_MINUTE, T0, T0 + 59).through == T0


def test_a_tick_late_by_less_than_the_grace_still_fires() -> None:
    # A restart of 50 s around a tick: it fires, late.
    assert plan(EVERY_MINUTE, T0, T0 + 110).fire == (T0 + 60,)
    every_second = parse("* * * * * *")
    p = plan(every_second, T0, T0 + 5, grace=10)
    assert p.fire == tuple(T0 + i for i in range(1, 6)) and p.missed == 0


def test_after_an_outage_skip_goes_on_from_the_next_tick() -> None:
    p = plan(EVERY_MINUTE, T0, T0 + 3600 + 30, missed_runs=MissedRuns.SKIP, grace=10)
    assert p.fire == () and p.missed == 60 and p.through == p.latest_missed == T0 + 3600
    p = plan(EVERY_MINUTE, T0, T0 + 3600 + 30)
    assert p.fire == (T0 + 3600,) and p.missed == 59  # the last one is within the grace


def test_after_an_outage_run_once_fires_the_latest_missed_tick_once() -> None:
    p = plan(EVERY_MINUTE, T0, T0 + 3600 + 30, missed_runs=MissedRuns.RUN_ONCE, grace=10)
    assert p.fire == (T0 + 3600,) and p.missed == 60
    hourly = parse("0 * * * *")
    p = plan(hourly, T0, T0 + 5 * 3600 + 120, missed_runs=MissedRuns.RUN_ONCE)
    assert p.fire == (T0 + 5 * 3600,) and p.through == T0 + 5 * 3600
    p = plan(hourly, T0, T0 + 5 * 3600 + 30, missed_runs=MissedRuns.RUN_ONCE)
    assert p.fire == (T0 + 4 * 3600, T0 + 5 * 3600)  # 5 h is on time, 4 h the latest missed
    # Missed ticks plus one within the grace: the missed one, then the recent one.
    every_second = parse("* * * * * *")
    p = plan(every_second, T0, T0 + 100, missed_runs=MissedRuns.RUN_ONCE, grace=2)
    assert p.fire == (T0 + 98, T0 + 99, T0 + 100) and p.missed == 98


def test_a_very_long_outage_is_counted_up_to_a_bound_and_cheap() -> None:
    every_second = parse("* * * * * *")
    p = plan(every_second, T0, T0 + 30 * 86400, grace=0)
    assert p.fire == () and p.missed == 1000 and p.through == T0 + 30 * 86400


def test_with_seconds_dst_follows_the_wall_clock_as_it_is() -> None:
    # Six fields are not Debian cron: no special case for the changes.
    s = "0 30 2 * * *"
    assert ticks(s, "Europe/Berlin", "2026-03-28T12:00:00Z", "2026-03-30T12:00:00Z") == [
        "2026-03-30T00:30:00Z"  # 02:30 did not exist on the 29th
    ]
    assert ticks(s, "Europe/Berlin", "2026-10-24T12:00:00Z", "2026-10-25T12:00:00Z") == [
        "2026-10-25T00:30:00Z",  # 02:30 CEST
        "2026-10-25T01:30:00Z",  # 02:30 CET
    ]
