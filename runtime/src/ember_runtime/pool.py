"""The server's side of the warm worker pool: hand out idle workers, time
calls out, and replace any worker that dies or overruns.

The pool keeps ``concurrency + spares`` workers. At most ``concurrency``
calls are admitted, so when a worker dies a spare is already idle and the
next call never waits for a fork; the zygote refills the pool in the
background.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
from collections import deque
from typing import cast

from ember_runtime import logs
from ember_runtime.invoke import Reply
from ember_runtime.wire import HEADER_LEN, frame, loads, unpack_len
from ember_runtime.worker import FORK


class WorkerDied(Exception):
    """The worker's socket closed with a call in progress."""


class CallTimedOut(Exception):
    """The call passed its deadline; the worker was killed."""


class WorkerConn(asyncio.Protocol):
    """One worker, seen from the server: a socket and at most one call."""

    def __init__(self, pool: WorkerPool) -> None:
        self.pool = pool
        self.pid = 0
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.pending: asyncio.Future[Reply] | None = None
        self.alive = True
        self.spawned_at = pool.loop.time()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        while len(buf) >= HEADER_LEN:
            size = unpack_len(buf)
            end = HEADER_LEN + size
            if len(buf) < end:
                return
            msg = loads(memoryview(buf)[HEADER_LEN:end])
            del buf[:end]
            if not self.pid:
                self.pid = int(msg)
                self.pool._arrived(self)
            elif self.pending is not None and not self.pending.done():
                fut, self.pending = self.pending, None
                fut.set_result(msg)

    def connection_lost(self, exc: Exception | None) -> None:
        self.alive = False
        if self.pending is not None and not self.pending.done():
            self.pending.set_exception(WorkerDied())
        self.pending = None
        self.pool._lost(self)

    def kill(self) -> None:
        """Kill the process and drop the socket (used on timeout)."""
        if self.alive and self.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        if self.transport is not None:
            self.transport.abort()


class WorkerPool:
    def __init__(self, ctrl: socket.socket, size: int) -> None:
        self.loop = asyncio.get_running_loop()
        self.ctrl = ctrl
        self.size = size
        self.idle: deque[WorkerConn] = deque()
        self.waiters: deque[asyncio.Future[WorkerConn]] = deque()
        self.workers: set[WorkerConn] = set()
        self.starting = 0
        self.restarts = 0
        self.closing = False
        self.broken = False
        self.last_spawn_seconds = 0.0
        self._full = asyncio.Event()

    # --- lifecycle -------------------------------------------------------

    async def start(self, within: float = 60.0) -> None:
        for _ in range(self.size - self.starting - len(self.workers)):
            self._spawn()
        await asyncio.wait_for(self._full.wait(), within)

    def _spawn(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            socket.send_fds(self.ctrl, [FORK], [theirs.fileno()])
        except OSError as exc:
            ours.close()
            self.broken = not self.closing
            if not self.closing:
                logs.emit("error", "fork server is gone; cannot replace worker", error=str(exc))
            return
        finally:
            theirs.close()
        self.starting += 1
        ours.setblocking(False)
        self.loop.create_task(self._connect(ours))

    async def _connect(self, sock: socket.socket) -> None:
        await self.loop.create_unix_connection(lambda: WorkerConn(self), sock=sock)

    def _arrived(self, w: WorkerConn) -> None:
        self.starting -= 1
        self.last_spawn_seconds = self.loop.time() - w.spawned_at
        self.workers.add(w)
        self.release(w)
        if len(self.workers) >= self.size:
            self._full.set()

    def _lost(self, w: WorkerConn) -> None:
        if w not in self.workers:
            if not w.pid:
                self.starting -= 1
            return
        self.workers.discard(w)
        with contextlib.suppress(ValueError):
            self.idle.remove(w)
        if not self.closing:
            self.restarts += 1
            self._full.clear()
            self._spawn()

    def close(self) -> None:
        self.closing = True
        for w in list(self.workers):
            if w.transport is not None:
                w.transport.close()
        self.ctrl.close()

    # --- calls -----------------------------------------------------------

    async def acquire(self, within: float) -> WorkerConn:
        """An idle worker; raises ``CallTimedOut`` if none frees up in time."""
        while self.idle:
            w = self.idle.pop()
            if w.alive:
                return w
        fut: asyncio.Future[WorkerConn] = self.loop.create_future()
        self.waiters.append(fut)
        timer = self.loop.call_later(within, fut.cancel)
        try:
            return await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release(fut.result())
            if fut.cancelled():
                raise CallTimedOut() from None
            raise
        finally:
            timer.cancel()

    def release(self, w: WorkerConn) -> None:
        if not w.alive:
            return
        while self.waiters:
            fut = self.waiters.popleft()
            if not fut.done():
                fut.set_result(w)
                return
        self.idle.append(w)

    async def call(self, w: WorkerConn, request: object, within: float) -> Reply:
        """Run one request on ``w``; raises ``WorkerDied`` or ``CallTimedOut``."""
        fut: asyncio.Future[Reply] = self.loop.create_future()
        w.pending = fut
        assert w.transport is not None
        w.transport.write(frame(request))
        timer = self.loop.call_later(within, self._expire, w, fut)
        try:
            reply = await fut
        except asyncio.CancelledError:
            w.kill()  # its late answer must never reach the next call
            raise
        finally:
            timer.cancel()
        self.release(w)
        return reply

    def _expire(self, w: WorkerConn, fut: asyncio.Future[Reply]) -> None:
        if not fut.done():
            w.pending = None
            fut.set_exception(CallTimedOut())
            w.kill()
