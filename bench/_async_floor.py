"""The ``async_throughput`` floor: the least work any Redis-Streams async
path must do per message, with none of the dispatcher's features.

Two roles, each its own process (``bench/async_throughput.py`` starts them):

* ``submit``: an HTTP endpoint (asyncio + httptools, no framework) that
  answers every POST with 202 and an invocation id once Redis has taken
  two writes: ``XADD`` of the body to the stream and ``HSET`` of a record
  (``status queued``, ``created``);
* ``consume`` (one per dispatcher replica): ``XREADGROUP`` up to
  ``--concurrency`` entries, for each the same synchronous call as the
  dispatcher makes (``POST /fn/<ns>/<name>`` through the same gateway, with
  the dispatcher's own HTTP client, ``dispatch.http1``), then ``HSET`` of
  the result on the record (status, ``started``, ``finished``, result
  status and body) and ``XACK``.

Redis commands issued in one turn of the event loop go out together on one
connection (with Ember's own ``dispatch.batch``), so a burst costs one round
trip; each command is still its own.

What it leaves out, all of which Ember does: idempotency keys, callbacks,
deadlines, stored request headers, Lua scripts (nothing is atomic here: a
crash between XADD and HSET leaves a message without a record), a
``running`` status written before the call, retries, backoff and the
dead-letter stream, claiming a dead consumer's messages (no heartbeat, no
``XAUTOCLAIM``), deleting acknowledged entries, retention (records never
expire), metrics, logs, graceful drain, the Function feed and per-Function
sources (one hard-wired stream), and every error path (a failed call is
just recorded). It is not a usable async path; it is the benchmark's
ceiling: measured next to the synchronous peer, it says how much of the
gap is the work itself on this machine.

    python bench/_async_floor.py submit --port P --redis-port R
    python bench/_async_floor.py consume --name C --gateway-port G --redis-port R
                                         [--concurrency 64]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from typing import Any

import httptools
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from ember_operator.dispatch.batch import Batcher
from ember_operator.dispatch.http1 import Http1Pool

NS, FN = "bench", "hello"
STREAM = "floor:{bench/hello}:async"
GROUP = "floor"


def record(invocation_id: str) -> str:
    return f"floor:{{bench/hello}}:inv:{invocation_id}"


# --- submit ------------------------------------------------------------------


class Submit(asyncio.Protocol):
    def __init__(self, pipe: Batcher) -> None:
        self.pipe = pipe
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self.transport is not None:
                self.transport.close()

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        body, self.body = b"".join(self.body), []
        if self.parser.get_method() != b"POST":  # a readiness probe
            assert self.transport is not None
            self.transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            return
        invocation_id = os.urandom(8).hex()
        self.pipe.command("XADD", STREAM, "*", "i", invocation_id, "m", body)
        done = self.pipe.command(
            "HSET", record(invocation_id), "status", "queued", "created", repr(time.time())
        )
        done.add_done_callback(lambda f: self._answer(f, invocation_id))

    def _answer(self, fut: asyncio.Future[Any], invocation_id: str) -> None:
        if self.transport is None:
            return
        if fut.exception() is not None:
            self.transport.write(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n")
            return
        self.transport.write(
            b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\nx-ember-invocation-id: %s\r\n\r\n"
            % invocation_id.encode()
        )


async def submit(port: int, redis_port: int) -> None:
    redis = Redis(host="127.0.0.1", port=redis_port)
    pipe = Batcher(redis, {})
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Submit(pipe), "127.0.0.1", port)
    async with server:
        await server.serve_forever()


# --- consume -----------------------------------------------------------------


async def consume(name: str, gateway_port: int, redis_port: int, concurrency: int) -> None:
    reader = Redis(host="127.0.0.1", port=redis_port, socket_timeout=10)
    pipe = Batcher(Redis(host="127.0.0.1", port=redis_port), {})
    try:
        await reader.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    except ResponseError as e:
        if "BUSYGROUP" not in str(e):
            raise
    await reader.set(f"floor:ready:{name}", 1)  # for the benchmark to wait on
    gateway = Http1Pool("127.0.0.1", gateway_port, max_body=1 << 20)
    path = f"/fn/{NS}/{FN}"
    headers = {"content-type": "application/json"}
    in_flight = 0
    room = asyncio.Event()
    tasks: set[asyncio.Task[None]] = set()

    async def work(entry_id: bytes, fields: dict[bytes, bytes]) -> None:
        nonlocal in_flight
        started = time.time()
        try:
            status, _, body = await gateway.post(path, headers, fields[b"m"], 30.0)
        except (OSError, ConnectionError) as e:
            status, body = 0, repr(e).encode()
        pipe.command(
            "HSET",
            record(fields[b"i"].decode()),
            "status",
            "succeeded" if status == 200 else "failed",
            "started",
            repr(started),
            "finished",
            repr(time.time()),
            "result_status",
            status,
            "result_body",
            body,
        )
        await pipe.command("XACK", STREAM, GROUP, entry_id)
        in_flight -= 1
        room.set()

    while True:
        while in_flight >= concurrency:
            room.clear()
            await room.wait()
        got: Any = await reader.xreadgroup(
            GROUP, name, {STREAM: ">"}, count=concurrency - in_flight, block=1000
        )
        for _, entries in got or []:
            for entry_id, fields in entries:
                in_flight += 1
                task = asyncio.get_running_loop().create_task(work(entry_id, fields))
                tasks.add(task)
                task.add_done_callback(tasks.discard)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    sub = ap.add_subparsers(dest="role", required=True)
    s = sub.add_parser("submit")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--redis-port", type=int, required=True)
    c = sub.add_parser("consume")
    c.add_argument("--name", required=True)
    c.add_argument("--gateway-port", type=int, required=True)
    c.add_argument("--redis-port", type=int, required=True)
    c.add_argument("--concurrency", type=int, default=64)
    args = ap.parse_args()
    import uvloop  # the gateway and the dispatcher run on uvloop too

    if args.role == "submit":
        uvloop.run(submit(args.port, args.redis_port))
    else:
        uvloop.run(consume(args.name, args.gateway_port, args.redis_port, args.concurrency))


if __name__ == "__main__":
    main()
