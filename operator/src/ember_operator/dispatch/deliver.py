"""One message from the stream to its outcome: decode it, check it may
run, call the function through the gateway, and write what happened.

The entry is acknowledged by the outcome's own write (``outcomes``), and
only there: an exception anywhere here leaves it pending, to be claimed
again after the visibility timeout. At least once, never lost.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from ember_operator.dispatch.callbacks import Callbacks
from ember_operator.dispatch.invoke import Answer, Invoker
from ember_operator.dispatch.message import Fields, Message, from_fields, from_queue
from ember_operator.dispatch.metrics import DispatchMetrics
from ember_operator.dispatch.outcomes import Outcomes
from ember_operator.dispatch.policy import Action, Throttle, decide
from ember_operator.dispatch.settings import DispatchSettings
from ember_operator.dispatch.sources import Lane, Source
from ember_runtime import logs

# A call that began without BEGIN is marked running after this long.
RUNNING_AFTER = 0.1


@dataclass
class Deps:
    """What every source's runner shares."""

    redis: Redis  # commands (short timeouts)
    reader: Redis  # blocking reads (a socket timeout above the block)
    outcomes: Outcomes
    invoker: Invoker
    callbacks: Callbacks
    metrics: DispatchMetrics
    settings: DispatchSettings


def decode(source: Source, lane: Lane, entry_id: str, fields: Fields) -> Message:
    if lane.owned:
        return from_fields(fields, entry_id)
    return from_queue(entry_id, fields, lane.stream)


def _log(level: str, msg: str, source: Source, m: Message, **kw: Any) -> None:
    logs.emit(
        level,
        msg,
        request_id=m.id,
        source=f"{source.kind}/{source.label}",
        function=f"{source.namespace}/{source.function}",
        attempt=m.attempt,
        **kw,
    )


async def deliver(
    d: Deps,
    source: Source,
    throttle: Throttle,
    lane: Lane,
    entry_id: str,
    fields: Fields,
    deliveries: int = 1,
) -> float | None:
    """Returns when a copy put back to wait is due (epoch seconds), if any."""
    out, metrics = d.outcomes, d.metrics
    try:
        m = decode(source, lane, entry_id, fields)
    except (ValueError, KeyError, TypeError) as e:
        logs.emit(
            "error",
            "undecodable message acknowledged",
            entry=entry_id,
            stream=lane.stream,
            error=repr(e),
        )
        await out.ack(lane, entry_id)
        return None
    if deliveries > d.settings.max_deliveries:
        reason = f"delivered {deliveries} times without an answer (consumers died on it)"
        await out.dead_letter(source, lane, entry_id, m, reason, None)
        metrics.count(source, "dead_lettered")
        _log("error", "dead-lettered", source, m, error=reason)
        return None
    too_late = _too_late(source, m)
    if too_late:
        await out.fail(source, lane, entry_id, m, too_late)
        metrics.count(source, "failed")
        _finished(d, source, m, "failed", too_late, None)
        return None
    started: float | None = None
    marker: asyncio.TimerHandle | None = None
    if fresh(source, lane, m, deliveries):
        started = time.time()
        marker = asyncio.get_running_loop().call_later(RUNNING_AFTER, _mark, d, source, m, started)
    else:
        verdict = await out.begin(source, m)
        if verdict != "run":
            await out.ack(lane, entry_id)
            metrics.count(source, "skipped")
            _log("info", f"copy acknowledged without a call ({verdict})", source, m)
            return None
    metrics.count(source, "attempts")
    outcome, answer = await d.invoker.call(source.namespace, source.function, m)
    decision = decide(outcome, m.attempt, source.policy)
    if marker is not None:
        marker.cancel()
        if decision.action is not Action.SUCCEED:  # the record says what was tried
            await out.mark(source, m, started or 0.0)
    if decision.action is Action.SUCCEED:
        assert answer is not None
        throttle.relieved()
        await out.succeed(
            source, lane, entry_id, m, answer.status, answer.headers, answer.body, started
        )
        metrics.count(source, "succeeded")
        _finished(d, source, m, "succeeded", "", answer)
        return None
    if decision.action is Action.BACK_OFF:
        pause = throttle.pressure()
        due = time.time() + pause
        await out.requeue(source, lane, entry_id, m.requeued(decision.reason, counts=False), due)
        metrics.count(source, "back_pressure")
        _log("info", "back-pressure: waiting", source, m, seconds=round(pause, 3))
        return due
    if decision.action is Action.RETRY:
        due = time.time() + decision.delay
        await out.requeue(source, lane, entry_id, m.requeued(decision.reason), due)
        metrics.count(source, "retried")
        _log(
            "warning",
            "attempt failed; retrying",
            source,
            m,
            error=decision.reason,
            seconds=round(decision.delay, 3),
        )
        return due
    kept = (answer.status, answer.headers, answer.body) if answer is not None else None
    await out.dead_letter(source, lane, entry_id, m, decision.reason, kept)
    metrics.count(source, "dead_lettered")
    _log("error", "dead-lettered", source, m, error=decision.reason)
    _finished(d, source, m, "dead-lettered", decision.reason, answer)
    return None


def _too_late(source: Source, m: Message) -> str:
    """Why ``m`` must not run any more (its deadline, or the Function's
    ``spec.async.maxAgeSeconds`` since it was first submitted), or ""."""
    now = time.time()
    if m.deadline is not None and now > m.deadline:
        return "deadline passed before it could run"
    if source.max_age is not None and m.first and now - m.first > source.max_age:
        return f"not run within spec.async.maxAgeSeconds ({source.max_age:g} s) of its submission"
    return ""


def fresh(source: Source, lane: Lane, m: Message, deliveries: int) -> bool:
    """A Function's async message read for the first time, as submitted:
    ``BEGIN`` could only answer 'run' (no attempt has written its record,
    nobody ran it, no newer copy exists, its key was checked at
    submission), so the call starts without it. The record says running
    once the call has taken ``RUNNING_AFTER`` (or has failed); a fast
    success writes the attempt with its result. One script per message
    instead of two (Redis's commandstats put the two at 43 us of its time
    per message, ``bench/async_throughput.py``)."""
    return (
        deliveries == 1
        and m.seq == 1
        and m.attempt == 1
        and not m.idempotency_key
        and source.kind == "function"
        and lane.stream == source.slot.stream
    )


def _mark(d: Deps, source: Source, m: Message, started: float) -> None:
    d.outcomes.mark(source, m, started).add_done_callback(_marked)


def _marked(f: asyncio.Future[object]) -> None:
    if not f.cancelled() and f.exception() is not None:  # shown late, nothing lost
        logs.emit("warning", "marking an invocation running failed", error=repr(f.exception()))


def _finished(
    d: Deps, source: Source, m: Message, status: str, error: str, answer: Answer | None
) -> None:
    if not m.callback:
        return
    payload: dict[str, Any] = {
        "invocationId": m.id,
        "function": f"{source.namespace}/{source.function}",
        "status": status,
        "attempts": m.attempt,
    }
    if error:
        payload["error"] = error
    if answer is not None:
        import base64

        try:
            body, enc = answer.body.decode("utf-8"), "text"
        except UnicodeDecodeError:
            body, enc = base64.b64encode(answer.body).decode("ascii"), "base64"
        payload["result"] = {
            "status": answer.status,
            "headers": dict(answer.headers),
            "body": body,
            "bodyEncoding": enc,
        }
    d.callbacks.post(m.callback, payload)
