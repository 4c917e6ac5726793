"""Script calls made at the same moment go to Redis in one pipeline.

Why: at a few thousand messages a second, the dispatcher's own cost per
message was mostly redis-py's per-command path (pool, encoder, a timeout
per reply, parse), for the one or two scripts each message needs, and the
gateway's for each submission (``SUBMIT``). Calls queued in one turn of
the event loop are sent together and their answers handed back one by
one, so a burst of 64 answers costs one round trip, not 64. Each call is
still its own atomic script; nothing is made atomic together.

The batches go over one connection of the Batcher's own, one batch at a
time: calls made while a batch is out wait for it and leave together,
which batches best exactly when Redis is busiest. redis-py opens that
connection (TLS, AUTH, SELECT, as configured); the commands are packed
and the replies parsed by hiredis in C, with one timeout per batch
(redis-py's per-reply path cost a third of a dispatcher's CPU per
message, ``bench/async_throughput.py``). Scripts are called by their SHA
(``EVALSHA``); after a Redis restart (scripts gone: ``NOSCRIPT``) they
are loaded again and the calls that failed for it are sent again, once.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import hiredis
from redis.asyncio import Redis
from redis.exceptions import NoScriptError, ResponseError

Arg = str | bytes | int | float
# (the script's name, or "" for a plain command; the command; its future;
# what makes the future's result of the reply, if anything)
Call = tuple[str, tuple[Arg, ...], "asyncio.Future[Any]", "Callable[[Any], Any] | None"]
READ_SIZE = 1 << 16
DEFAULT_TIMEOUT = 5.0


def resp(command: Sequence[Arg]) -> bytes:
    """One command in the Redis protocol (RESP), packed in C."""
    return hiredis.pack_command(tuple(command))  # type: ignore[arg-type,no-any-return]


def reply_error(e: hiredis.ReplyError) -> ResponseError:
    """A reply that is an error, as redis-py names it."""
    text = str(e)
    return NoScriptError(text) if text.startswith("NOSCRIPT") else ResponseError(text)


async def read_replies(stream: asyncio.StreamReader, parser: Any, n: int) -> list[Any]:
    """``n`` replies off a connection's ``stream``, parsed by the hiredis
    ``parser``; a reply that is an error comes back as one (not raised)."""
    out: list[Any] = []
    while len(out) < n:
        got = parser.gets()
        if got is False:
            data = await stream.read(READ_SIZE)
            if not data:
                raise ConnectionError("Redis closed the connection")
            parser.feed(data)
        else:
            out.append(reply_error(got) if isinstance(got, hiredis.ReplyError) else got)
    return out


class Batcher:
    def __init__(self, redis: Redis, scripts: Mapping[str, str]) -> None:
        self.redis = redis
        self.sources = dict(scripts)
        self.shas = {name: hashlib.sha1(src.encode()).hexdigest() for name, src in scripts.items()}
        self.pending: list[Call] = []
        self.sending = False
        self.conn: Any = None  # one connection of its own: batches go one after another
        self.parser: Any = None
        self.tasks: set[asyncio.Task[None]] = set()
        timeout = redis.connection_pool.connection_kwargs.get("socket_timeout")
        self.timeout = float(timeout) if timeout else DEFAULT_TIMEOUT
        self.loop: asyncio.AbstractEventLoop | None = None

    def call(self, name: str, keys: Sequence[str], args: Sequence[Arg]) -> asyncio.Future[Any]:
        """Script ``name`` with ``keys`` and ``args``: its reply."""
        return self._queue(name, ("EVALSHA", self.shas[name], len(keys), *keys, *args))

    def command(
        self, *command: Arg, then: Callable[[Any], Any] | None = None
    ) -> asyncio.Future[Any]:
        """Any other command, in the same batches: its reply (or what
        ``then`` makes of it, when it is not an error)."""
        return self._queue("", command, then)

    def _queue(
        self, name: str, command: tuple[Arg, ...], then: Callable[[Any], Any] | None = None
    ) -> asyncio.Future[Any]:
        loop = self.loop
        if loop is None:
            loop = self.loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        if not self.pending and not self.sending:
            loop.call_soon(self._flush)
        self.pending.append((name, command, fut, then))
        return fut

    def _flush(self) -> None:
        if self.sending or not self.pending:
            return  # the batch in flight sends these when it is back
        batch, self.pending = self.pending, []
        self.sending = True
        assert self.loop is not None
        task = self.loop.create_task(self._send(batch))
        self.tasks.add(task)
        task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        self.sending = False
        self._flush()

    async def _connect(self) -> Any:
        conn = await self.redis.connection_pool.get_connection()  # type: ignore[no-untyped-call]
        self.parser = hiredis.Reader() if hasattr(conn, "_reader") else None
        self.conn = conn
        return conn

    async def _replies(self, conn: Any, n: int) -> list[Any]:
        """``n`` replies, parsed by hiredis straight off the connection's
        stream (redis-py's own per-reply path where that is not there)."""
        if self.parser is None:
            out: list[Any] = []
            for _ in range(n):
                try:
                    out.append(await conn.read_response())
                except ResponseError as e:
                    out.append(e)
            return out
        return await read_replies(conn._reader, self.parser, n)

    async def _exchange(self, batch: list[Call]) -> list[Any]:
        conn = self.conn
        if conn is not None and self.parser is not None and conn._reader.at_eof():
            # Redis closed it while idle (a restart): a new one, before any
            # call is lost to it.
            self.conn = self.parser = None
            await conn.disconnect()
            conn = None
        conn = conn or await self._connect()
        try:
            payload = b"".join([resp(call[1]) for call in batch])
            async with asyncio.timeout(self.timeout):
                if self.parser is None:
                    await conn.send_packed_command(payload, check_health=False)
                else:  # without redis-py's wait_for, a task per write
                    conn._writer.write(payload)
                    await conn._writer.drain()
                return await self._replies(conn, len(batch))
        except BaseException:
            self.conn = self.parser = None  # in an unknown state: the next batch reconnects
            await conn.disconnect()
            raise

    async def _send(self, batch: list[Call], again: bool = True) -> None:
        try:
            results = await self._exchange(batch)
            answers = zip(batch, results, strict=True)
            missing = [c for c, r in answers if c[0] and isinstance(r, NoScriptError)]
            if missing and again:
                for name in {c[0] for c in missing}:
                    await self.redis.script_load(self.sources[name])
                await self._send(missing, again=False)
            for (name, _, fut, then), result in zip(batch, results, strict=True):
                if fut.done() or (again and name and isinstance(result, NoScriptError)):
                    continue
                if isinstance(result, Exception):
                    fut.set_exception(result)
                else:
                    fut.set_result(then(result) if then is not None else result)
        except Exception as e:  # the connection failed: every call in the batch did
            for _, _, fut, _ in batch:
                if not fut.done():
                    fut.set_exception(e)

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.disconnect()
            self.conn = self.parser = None
