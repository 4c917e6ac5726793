"""Script calls made at the same moment go to Redis in one pipeline.

Why: at a few thousand messages a second, the dispatcher's own cost per
message was mostly redis-py's per-command round trip (pool, write, read,
parse), twice per message (``BEGIN``, ``SUCCEED``), and the gateway's
once per submission (``SUBMIT``). Calls queued in one
turn of the event loop are sent together and their answers handed back
one by one, so a burst of 64 answers costs one round trip, not 64. Each
call is still its own atomic script; nothing is made atomic together.

The batches go over one connection of the Batcher's own, one batch at a
time: calls made while a batch is out wait for it and leave together,
which batches best exactly when Redis is busiest. Scripts are called by
their SHA (``EVALSHA``); after a Redis restart (scripts gone:
``NOSCRIPT``) they are loaded again and the calls that failed for it are
sent again, once.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError, ResponseError

Arg = str | bytes | int | float
Call = tuple[str, Sequence[str], Sequence[Arg], "asyncio.Future[Any]"]


def resp(out: list[bytes], command: Sequence[Arg]) -> None:
    """One command in the Redis protocol (RESP), appended to ``out``:
    redis-py's general encoder cost more than the rest of a submission."""
    out.append(b"*%d\r\n" % len(command))
    for arg in command:
        if isinstance(arg, str):
            arg = arg.encode()
        elif not isinstance(arg, bytes):
            arg = repr(arg).encode() if isinstance(arg, float) else str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(arg), arg))


class Batcher:
    def __init__(self, redis: Redis, scripts: Mapping[str, str]) -> None:
        self.redis = redis
        self.sources = dict(scripts)
        self.shas = {name: hashlib.sha1(src.encode()).hexdigest() for name, src in scripts.items()}
        self.pending: list[Call] = []
        self.sending = False
        self.conn: Any = None  # one connection of its own: batches go one after another
        self.tasks: set[asyncio.Task[None]] = set()

    def call(self, name: str, keys: Sequence[str], args: Sequence[Arg]) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        if not self.pending and not self.sending:
            loop.call_soon(self._flush)
        self.pending.append((name, keys, args, fut))
        return fut

    def _flush(self) -> None:
        if self.sending or not self.pending:
            return  # the batch in flight sends these when it is back
        batch, self.pending = self.pending, []
        self.sending = True
        task = asyncio.get_running_loop().create_task(self._send(batch))
        self.tasks.add(task)
        task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        self.sending = False
        self._flush()

    async def _exchange(self, batch: list[Call]) -> list[Any]:
        if self.conn is None:
            self.conn = await self.redis.connection_pool.get_connection()  # type: ignore[no-untyped-call]
        conn = self.conn
        try:
            out: list[bytes] = []
            for name, keys, args, _ in batch:
                resp(out, ("EVALSHA", self.shas[name], len(keys), *keys, *args))
            await conn.send_packed_command(b"".join(out))
            results: list[Any] = []
            for _ in batch:
                try:
                    results.append(await conn.read_response())
                except ResponseError as e:
                    results.append(e)
            return results
        except BaseException:
            await conn.disconnect()  # in an unknown state: the next batch reconnects
            raise

    async def _send(self, batch: list[Call], again: bool = True) -> None:
        try:
            results = await self._exchange(batch)
            answers = zip(batch, results, strict=True)
            missing = [c for c, r in answers if isinstance(r, NoScriptError)]
            if missing and again:
                for name in {c[0] for c in missing}:
                    await self.redis.script_load(self.sources[name])
                await self._send(missing, again=False)
            for (_, _, _, fut), result in zip(batch, results, strict=True):
                if fut.done() or (again and isinstance(result, NoScriptError)):
                    continue
                if isinstance(result, Exception):
                    fut.set_exception(result)
                else:
                    fut.set_result(result)
        except Exception as e:  # the connection failed: every call in the batch did
            for _, _, _, fut in batch:
                if not fut.done():
                    fut.set_exception(e)

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.disconnect()
            self.conn = None
