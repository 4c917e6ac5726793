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
from collections.abc import Callable, Sequence
from typing import IO, cast

from ember_runtime import logs
from ember_runtime.invoke import Reply
from ember_runtime.wire import HEADER_LEN, frame, frame_end, loads, request_worker


class WorkerDied(Exception):
    """The worker's socket closed with a call in progress."""


class CallTimedOut(Exception):
    """The call passed its deadline; the worker was killed."""


Done = Callable[["Reply | None", "Exception | None"], None]


class WorkerConn(asyncio.Protocol):
    """One worker, seen from the server: a socket and at most one call.

    Calls complete through a plain callback rather than a future and a task:
    on the hot path that is the difference between the hop costing more or
    less than a bare ASGI server's own per-request overhead.
    """

    def __init__(self, pool: WorkerPool) -> None:
        self.pool = pool
        self.pid = 0
        self.transport: asyncio.BaseTransport | None = None  # replies (read end)
        self.writer: asyncio.WriteTransport | None = None  # requests (write end)
        self.buf = bytearray()
        self.on_done: Done | None = None
        self.deadline = 0.0  # loop.time() by which the current call must answer
        self.alive = True
        self.spawned_at = pool.loop.time()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        # Common case: exactly one whole reply, no buffering needed.
        if not buf and self.on_done is not None and frame_end(data) == len(data) and self.pid:
            done, self.on_done = self.on_done, None
            self.pool.release(self)
            done(loads(memoryview(data)[HEADER_LEN:]), None)
            return
        buf += data
        while end := frame_end(buf):
            msg = loads(memoryview(buf)[HEADER_LEN:end])
            del buf[:end]
            if not self.pid:
                self.pid = int(msg)
                self.pool._arrived(self)
            elif self.on_done is not None:
                done, self.on_done = self.on_done, None
                self.pool.release(self)
                done(msg, None)

    def connection_lost(self, exc: Exception | None) -> None:
        self.alive = False
        done, self.on_done = self.on_done, None
        self.pool._lost(self)
        if done is not None:
            done(None, WorkerDied())

    def submit(self, request: object, deadline: float, done: Done) -> None:
        """Send one request; ``done(reply, None)`` or ``done(None, error)`` follows.

        ``deadline`` is on the loop clock; ``WorkerPool.expire_overdue``
        enforces it.
        """
        assert self.writer is not None and self.on_done is None
        self.on_done = done
        self.deadline = deadline
        self.writer.write(frame(request))

    def expire(self) -> None:
        done, self.on_done = self.on_done, None
        if done is not None:
            self.kill()
            done(None, CallTimedOut())

    def kill(self) -> None:
        """Kill the process and drop the socket."""
        self.alive = False
        if self.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        if self.writer is not None:
            self.writer.abort()
        if self.transport is not None:
            self.transport.close()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.transport is not None:
            self.transport.close()


def _pipe_file(fd: int, mode: str) -> IO[bytes]:
    """Wrap a pipe fd for the loop; the transport owns and closes it."""
    return open(fd, mode, buffering=0)


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
        # Set by the first worker: the pod is ready as soon as it can serve
        # one call (the rest arrive within milliseconds, and calls wait for
        # them in the queue), which is what a cold start waits for.
        self.serving = asyncio.Event()

    # --- lifecycle -------------------------------------------------------

    async def start(self, within: float = 60.0, requested: Sequence[tuple[int, int]] = ()) -> None:
        """Fill the pool (``requested`` are workers already asked of the
        zygote); return once the first worker can serve."""
        for req_w, rep_r in requested:
            self._adopt(req_w, rep_r)
        for _ in range(self.size - self.starting - len(self.workers)):
            self._spawn()
        await asyncio.wait_for(self.serving.wait(), within)

    def _spawn(self) -> None:
        try:
            req_w, rep_r = request_worker(self.ctrl)
        except OSError as exc:
            self.broken = not self.closing
            if not self.closing:
                logs.emit("error", "fork server is gone; cannot replace worker", error=str(exc))
            return
        self._adopt(req_w, rep_r)

    def _adopt(self, req_w: int, rep_r: int) -> None:
        self.starting += 1
        self.loop.create_task(self._connect(req_w, rep_r))

    async def _connect(self, req_w: int, rep_r: int) -> None:
        w = WorkerConn(self)
        await self.loop.connect_read_pipe(lambda: w, _pipe_file(rep_r, "rb"))
        writer, _ = await self.loop.connect_write_pipe(
            asyncio.BaseProtocol, _pipe_file(req_w, "wb")
        )
        w.writer = writer

    def _arrived(self, w: WorkerConn) -> None:
        self.starting -= 1
        self.last_spawn_seconds = self.loop.time() - w.spawned_at
        self.workers.add(w)
        self.release(w)
        self.serving.set()

    def _lost(self, w: WorkerConn) -> None:
        if w not in self.workers:
            if not w.pid:
                # Died before saying hello (the zygote could not fork it?):
                # try again shortly rather than serve one worker short.
                self.starting -= 1
                if not self.closing:
                    self.loop.call_later(0.1, self._spawn)
            return
        self.workers.discard(w)
        with contextlib.suppress(ValueError):
            self.idle.remove(w)
        if not self.closing:
            self.restarts += 1
            self._spawn()

    def close(self) -> None:
        self.closing = True
        for w in list(self.workers):
            w.close()
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

    def expire_overdue(self, now: float) -> None:
        """Kill every worker whose call is past its deadline (504 to its caller)."""
        for w in list(self.workers):
            if w.on_done is not None and w.deadline <= now:
                w.expire()

    async def call(self, w: WorkerConn, request: object, within: float) -> Reply:
        """Run one request on ``w``; raises ``WorkerDied`` or ``CallTimedOut``.

        The deadline is enforced by ``expire_overdue``; whoever awaits this
        must keep the server's sweeper (or its own) running.
        """
        fut: asyncio.Future[Reply] = self.loop.create_future()

        def done(reply: Reply | None, error: Exception | None) -> None:
            if fut.done():
                return
            if error is not None:
                fut.set_exception(error)
            else:
                fut.set_result(cast(Reply, reply))

        w.submit(request, self.loop.time() + within, done)
        try:
            return await fut
        except asyncio.CancelledError:
            w.kill()  # its late answer must never reach the next call
            raise
