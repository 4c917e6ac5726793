"""Redrive: dead letters back to be tried again, attempts reset.

A Function's dead letters go back into its async stream. A queue
Trigger's go into the Trigger's own retry stream, not the user's stream:
other consumer groups on that stream must not see them a second time.
Each moved invocation gets a newer ``seq``, so a stale copy of it that a
crash left pending elsewhere is recognised and dropped (``BEGIN``).

Written so a crash midway duplicates at worst: the new copy is written
before the dead letter is deleted (in one transaction for a Function,
whose streams share a slot).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

from redis.asyncio import Redis

from ember_operator.dispatch import keys
from ember_operator.dispatch.message import (
    Message,
    from_fields,
    from_queue_dead_letter,
    pack,
    to_fields,
)
from ember_operator.dispatch.streams import entries

PAGE = 100


@dataclass(frozen=True)
class Moved:
    invocation_id: str
    error: str  # why it was dead-lettered


def _text(v: bytes | str | None) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v or "")


async def _next_seq(redis: Redis, record: str, m: Message) -> int:
    """Newer than any copy there was: the record's and the dead letter's."""
    raw = await redis.hget(record, "seq")
    return max(int(raw or 0), m.seq) + 1


async def _requeue(redis: Redis, record: str, m: Message, retention: int) -> None:
    redis_now = repr(time.time())
    pipe = redis.pipeline(transaction=True)
    pipe.hset(
        record,
        mapping={
            "status": "queued",
            "attempts": "0",
            "seq": str(m.seq),
            "error": "",
            "redriven": redis_now,
        },
    )
    pipe.hdel(record, "finished", "next", "result_status", "result_body", "result_headers")
    pipe.expire(record, retention)
    await pipe.execute()


async def redrive_function(
    redis: Redis, namespace: str, name: str, retention: int = 24 * 3600
) -> list[Moved]:
    slot = keys.function_keys(namespace, name)
    moved: list[Moved] = []
    for entry_id, fields in entries(await redis.xrange(slot.dead_letters)):
        old = from_fields(fields)
        record = slot.record(old.id)
        m = replace(old, attempt=1, seq=await _next_seq(redis, record, old), error="")
        # The record first: a copy must never meet a record that still says
        # dead-lettered (BEGIN would only acknowledge it).
        await _requeue(redis, record, m, retention)
        pipe = redis.pipeline(transaction=True)
        pipe.xadd(slot.stream, to_fields(m))  # type: ignore[arg-type]
        pipe.xdel(slot.dead_letters, entry_id)
        await pipe.execute()
        moved.append(Moved(m.id, _text(fields.get(b"error"))))
    return moved


async def trigger_dead_letters(redis: Redis, namespace: str, name: str) -> tuple[str, str] | None:
    """The Trigger's stream and dead-letter stream, as the dispatcher wrote
    them down (``keys.SlotKeys.meta``); None if it never ran."""
    raw = await redis.hgetall(keys.trigger_keys(namespace, name).meta)
    if not raw:
        return None
    return _text(raw.get(b"stream")), _text(raw.get(b"dead_letters"))


async def redrive_trigger(
    redis: Redis,
    namespace: str,
    name: str,
    stream: str,
    dead_letters: str,
    retention: int = 24 * 3600,
) -> list[Moved]:
    slot = keys.trigger_keys(namespace, name)
    moved: list[Moved] = []
    for entry_id, fields in entries(await redis.xrange(dead_letters)):
        if _text(fields.get(b"ember-trigger")) not in ("", f"{namespace}/{name}"):
            continue  # another Trigger's dead letter in a shared stream
        old = from_queue_dead_letter(fields, stream)
        record = slot.record(old.id)
        m = replace(old, attempt=1, seq=await _next_seq(redis, record, old), source="redrive")
        await _requeue(redis, record, m, retention)
        await redis.xadd(slot.retries, {"m": pack(m)})
        await redis.xdel(dead_letters, entry_id)
        moved.append(Moved(m.id, _text(fields.get(b"ember-error"))))
    return moved
