"""The state changes after a message is read: begin an attempt, and end it
(succeeded, retry later, dead-lettered, failed), each acknowledging the
stream entry only once the outcome is written.

Order is what makes "never lost" hold: the new copy (a retry, a dead
letter) and the record are written first, the entry is acknowledged last.
On Ember's own streams all of it is one ``MULTI`` in the source's slot
(a success, the hot path, one script: one round trip).
A queue Trigger's stream and dead-letter stream are the user's and may
live in other slots: there the dead letter is written first, the slot's
transaction second, the ``XACK`` last, so a crash in between leaves the
old entry pending; it is claimed again, and ``BEGIN`` finds it finished
or superseded (a newer ``seq``) and only acknowledges it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from ember_operator.dispatch import scripts
from ember_operator.dispatch.batch import Batcher
from ember_operator.dispatch.message import (
    Message,
    pack,
    pairs_json,
    queue_dead_letter,
    to_fields,
)
from ember_operator.dispatch.sources import Lane, Source

Headers = Sequence[tuple[str, str]]


class Outcomes:
    def __init__(
        self, redis: Redis, consumer: str, retention_seconds: int, max_result_bytes: int
    ) -> None:
        self.redis = redis
        self.consumer = consumer
        self.ttl = str(max(1, int(retention_seconds)))
        self.max_result = max_result_bytes
        self._move = redis.register_script(scripts.MOVE_DUE)
        self.batch = Batcher(
            redis, {"begin": scripts.BEGIN, "succeed": scripts.SUCCEED, "mark": scripts.MARK}
        )

    async def begin(self, source: Source, m: Message) -> str:
        """'run', or why the copy must only be acknowledged: 'final',
        'stale' or 'duplicate' (see ``scripts.BEGIN``)."""
        slot = source.slot
        ks = [slot.record(m.id)]
        if m.idempotency_key and source.kind == "trigger":
            ks.append(slot.done(m.idempotency_key))
        args: list[str | int] = [m.attempt, m.seq, repr(time.time()), self.consumer, self.ttl]
        args += [f"{source.namespace}/{source.function}", m.source, repr(m.first)]
        got = await self.batch.call("begin", ks, args)
        return got.decode() if isinstance(got, bytes) else str(got)

    def mark(self, source: Source, m: Message, started: float) -> asyncio.Future[Any]:
        """What ``begin`` would have written, for an attempt that began
        without it (``scripts.MARK``): status running, the attempt, when."""
        args: list[str | int] = [m.attempt, repr(started), self.consumer, self.ttl]
        args += [f"{source.namespace}/{source.function}", m.source, repr(m.first)]
        return self.batch.call("mark", [source.slot.record(m.id)], args)

    @staticmethod
    def identity_fields(source: Source, m: Message) -> list[str]:
        """What every record says of its invocation (field, value, ...). A
        submission writes no record, so whichever outcome comes first
        writes these."""
        fn = f"{source.namespace}/{source.function}"
        return ["function", fn, "source", m.source, "created", repr(m.first)]

    @classmethod
    def identity(cls, source: Source, m: Message) -> dict[Any, Any]:
        fields = cls.identity_fields(source, m)
        return dict(zip(fields[::2], fields[1::2], strict=True))

    async def _commit(self, lane: Lane, entry_id: str, pipe: Pipeline) -> None:
        if lane.owned:
            pipe.xack(lane.stream, lane.group, entry_id)
            pipe.xdel(lane.stream, entry_id)
        await pipe.execute()
        if not lane.owned:
            await self.redis.xack(lane.stream, lane.group, entry_id)

    async def ack(self, lane: Lane, entry_id: str) -> None:
        await self._commit(lane, entry_id, self.redis.pipeline(transaction=True))

    def _result(self, source: Source, status: int, headers: Headers, body: bytes) -> list[Any]:
        """The result's record fields, as field, value, field, value, ..."""
        out: list[Any] = ["result_status", str(status)]
        if source.kind == "function":  # queue Triggers' results have no reader
            out += ["result_headers", pairs_json(headers), "result_body", body[: self.max_result]]
            out += ["result_truncated", "1" if len(body) > self.max_result else "0"]
        return out

    async def succeed(
        self,
        source: Source,
        lane: Lane,
        entry_id: str,
        m: Message,
        status: int,
        headers: Headers,
        body: bytes,
        started: float | None = None,
    ) -> None:
        """``started``: the attempt began without ``begin``; its facts are
        written here, with the result."""
        slot = source.slot
        ks = [slot.record(m.id)]
        if lane.owned:
            ks.append(lane.stream)
        if m.idempotency_key and source.kind == "trigger":
            ks.append(slot.done(m.idempotency_key))
        flags = ("a" if lane.owned else "") + ("r" if m.seq > 1 else "")
        args: list[str | bytes] = [self.ttl, flags, lane.group, entry_id, m.id]
        args += self._result(source, status, headers, body)
        args += ["finished", repr(time.time())]
        if started is not None:
            args += ["attempts", str(m.attempt), "started", repr(started)]
            args += ["consumer", self.consumer, *self.identity_fields(source, m)]
        await self.batch.call("succeed", ks, args)
        if not lane.owned:
            await self.redis.xack(lane.stream, lane.group, entry_id)

    async def requeue(
        self, source: Source, lane: Lane, entry_id: str, later: Message, due: float
    ) -> None:
        """``later`` (a newer copy) waits in the delayed set until ``due``."""
        slot = source.slot
        pipe = self.redis.pipeline(transaction=True)
        pipe.zadd(slot.delayed, {pack(later): due})
        record = slot.record(later.id)
        pipe.hset(
            record,
            mapping={
                "status": "queued",
                "seq": str(later.seq),
                "error": later.error,
                "next": repr(due),
                **self.identity(source, later),
            },
        )
        pipe.expire(record, int(self.ttl))
        await self._commit(lane, entry_id, pipe)

    async def dead_letter(
        self,
        source: Source,
        lane: Lane,
        entry_id: str,
        m: Message,
        reason: str,
        answer: tuple[int, Headers, bytes] | None,
    ) -> None:
        now = repr(time.time())
        facts = {
            "error": reason,
            "attempts": str(m.attempt),
            "first": repr(m.first),
            "dead-at": now,
            "last-status": str(answer[0]) if answer else "",
        }
        slot = source.slot
        pipe = self.redis.pipeline(transaction=True)
        if source.dead_letters_owned:
            fields = to_fields(m)
            fields.update({k.replace("-", "_"): v for k, v in facts.items()})
            pipe.xadd(source.dead_letters, fields)  # type: ignore[arg-type]
        else:
            facts |= {"trigger": source.label, "entry": entry_id}
            await self.redis.xadd(source.dead_letters, queue_dead_letter(m, facts))  # type: ignore[arg-type]
        record = slot.record(m.id)
        mapping: dict[str, str | bytes] = {
            "status": "dead-lettered",
            "finished": now,
            "error": reason,
            **self.identity(source, m),
        }
        if answer is not None:
            result = self._result(source, *answer)
            mapping.update(zip(result[::2], result[1::2], strict=True))
        pipe.hset(record, mapping=mapping)  # type: ignore[arg-type]
        pipe.hdel(record, "next")
        pipe.expire(record, int(self.ttl))
        await self._commit(lane, entry_id, pipe)

    async def fail(
        self, source: Source, lane: Lane, entry_id: str, m: Message, reason: str
    ) -> None:
        """Given up without a dead letter (its deadline passed): replaying
        it later would be as late."""
        pipe = self.redis.pipeline(transaction=True)
        record = source.slot.record(m.id)
        mapping = self.identity(source, m)
        mapping |= {"status": "failed", "finished": repr(time.time()), "error": reason}
        pipe.hset(record, mapping=mapping)
        pipe.hdel(record, "next")
        pipe.expire(record, int(self.ttl))
        await self._commit(lane, entry_id, pipe)

    async def move_due(self, source: Source, now: float, limit: int = 500) -> int:
        slot = source.slot
        got = await self._move(keys=[slot.delayed, slot.retries], args=[repr(now), limit])
        return int(got)
