"""Retries, dead letters and redrive against a real Redis and a real
runtime: the backoff the function sees matches the configured schedule
(within 20 %), a bad request is dead-lettered at once, and redrive after
a fix makes every dead letter succeed."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from ember_operator.dispatch import keys
from ember_operator.dispatch.redrive import redrive_function
from tests.integration.dispatch.harness import NS, Rig, counts_of, fn_object, redrive_cli

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

# Seconds, not milliseconds: the gateway, the dispatcher and this test share
# one event loop on a busy machine, and a 20 % bound must hold with that.
INITIAL, MAX_RETRIES = 1.0, 2


async def test_poison_messages_retry_on_schedule_then_dead_letter_then_redrive(
    rig: Rig,
) -> None:
    """100 messages, 2 of them poison (503 until a fix): exactly the 2 are
    dead-lettered after maxRetries + 1 attempts, spaced by the backoff.
    The dispatcher's bound is the function's capacity (8), so a due retry
    waits for a free call, not in the gateway's queue behind the backlog."""
    rig.route("jobs", concurrency=8)
    log, fix = rig.log, rig.tmp_path / "fixed"
    poison = {13, 77}
    ids: dict[int, str] = {}
    for n in range(100):
        body = {"do": "fixable" if n in poison else "ok", "fix": str(fix), "n": n, "log": str(log)}
        r = await rig.post(body)
        assert r.status_code == 202
        ids[n] = r.json()["invocationId"]
    d = await rig.dispatch(
        max_retries=MAX_RETRIES,
        backoff_initial_seconds=INITIAL,
        backoff_max_seconds=10.0,
        concurrency=8,
    )
    finals = await asyncio.gather(*(rig.final(ids[n], 30) for n in range(100)))
    dead = {n for n, s in zip(range(100), finals, strict=True) if s["status"] == "dead-lettered"}
    assert dead == poison
    assert all(s["status"] == "succeeded" for n, s in enumerate(finals) if n not in poison)

    calls = rig.calls()
    for n in poison:
        mine = sorted((c for c in calls if c["n"] == n), key=lambda c: c["t"])
        assert [c["attempt"] for c in mine] == [str(a) for a in range(1, MAX_RETRIES + 2)]
        # From the end of a failed attempt to the start of the next one.
        gaps = [b["t"] - a["end"] for a, b in itertools.pairwise(mine)]
        for i, gap in enumerate(gaps):
            nominal = INITIAL * 2**i
            assert 0.8 * nominal <= gap <= 1.2 * nominal, (n, i, gaps)
        status = finals[n]
        assert status["attempts"] == MAX_RETRIES + 1
        assert (
            "HTTP 503" in status["error"] and f"after {MAX_RETRIES + 1} attempts" in status["error"]
        )

    r = rig.r
    slot = keys.function_keys(NS, "jobs")
    letters = await r.xrange(slot.dead_letters)
    assert len(letters) == len(poison)
    for _, fields in letters:
        assert fields[b"attempts"] == str(MAX_RETRIES + 1).encode()
        assert b"HTTP 503" in fields[b"error"]
        assert float(fields[b"dead_at"]) > float(fields[b"first"]) > 0
        assert fields[b"last_status"] == b"503"
    assert counts_of(d)["dead_lettered"] == len(poison)

    fix.touch()  # the fix ships; then the documented command replays them
    out = await redrive_cli(rig.redis.url, f"{NS}/jobs")
    assert f"{len(poison)} dead letter(s) of Function {NS}/jobs queued again" in out
    for n in poison:
        assert f"moved {ids[n]}: HTTP 503" in out
    for n in poison:
        again = await rig.final(ids[n], 20)
        assert again["status"] == "succeeded" and again["attempts"] == 1, again
    assert await r.xlen(slot.dead_letters) == 0
    assert await r.xlen(slot.stream) == 0  # acknowledged entries are deleted


async def test_a_4xx_is_dead_lettered_at_once(rig: Rig) -> None:
    rig.route("jobs")
    inv = await rig.submit({"do": "bad", "log": str(rig.log)})
    await rig.dispatch(max_retries=5)
    done = await rig.final(inv)
    assert done["status"] == "dead-lettered" and done["attempts"] == 1
    assert "HTTP 422" in done["error"] and "not retried" in done["error"]
    assert done["result"]["status"] == 422 and '"bad"' in done["result"]["body"]
    assert len(rig.calls()) == 1
    assert await rig.r.xlen(keys.function_keys(NS, "jobs").dead_letters) == 1


async def test_redrive_from_python_resets_attempts(rig: Rig) -> None:
    rig.route("jobs")
    fix = rig.tmp_path / "fixed"
    inv = await rig.submit({"do": "fixable", "fix": str(fix)})
    await rig.dispatch(max_retries=0)
    assert (await rig.final(inv))["status"] == "dead-lettered"
    fix.touch()
    moved = await redrive_function(rig.r, NS, "jobs")
    assert [m.invocation_id for m in moved] == [inv]
    assert (await rig.client.get(f"/async/{NS}/jobs/{inv}")).json()["attempts"] in (0, 1)
    done = await rig.final(inv)
    assert done["status"] == "succeeded" and done["attempts"] == 1
    assert await redrive_function(rig.r, NS, "jobs") == []


async def test_a_functions_own_async_policy_wins_over_the_installs(rig: Rig) -> None:
    """spec.async.maxRetries and backoff: a poison message of this Function
    gets its two attempts, not the install's six."""
    rig.route("jobs")
    fn = fn_object("jobs")
    fn["spec"]["async"] = {"maxRetries": 1, "backoff": {"initialSeconds": 1, "maxSeconds": 1}}
    inv = await rig.submit({"do": "fail", "log": str(rig.log)})
    await rig.fleet([fn], max_retries=5, backoff_initial_seconds=30).start()
    done = await rig.final(inv, 20)
    assert done["status"] == "dead-lettered" and done["attempts"] == 2, done
    assert len(rig.calls()) == 2


async def test_an_invocation_older_than_max_age_fails_without_a_call(rig: Rig) -> None:
    """spec.async.maxAgeSeconds: a message still waiting that long after its
    submission (here: no dispatcher ran) fails instead of running."""
    rig.route("jobs")
    old = await rig.submit({"do": "ok", "log": str(rig.log)})
    await asyncio.sleep(1.5)
    fn = fn_object("jobs")
    fn["spec"]["async"] = {"maxAgeSeconds": 1}
    await rig.fleet([fn]).start()
    done = await rig.final(old)
    assert done["status"] == "failed" and "maxAgeSeconds (1 s)" in done["error"], done
    assert done["function"] == f"{NS}/jobs" and done["createdAt"] is not None
    young = await rig.submit({"do": "ok", "log": str(rig.log)})
    assert (await rig.final(young))["status"] == "succeeded"
    assert [c["id"] for c in rig.calls()] == [young]  # the old one was never called
