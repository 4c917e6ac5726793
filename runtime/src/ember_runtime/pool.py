"""The server's side of the warm worker pool: hand out idle workers, time
calls out, and replace any worker that dies, overruns or has served its
``max_calls``.

The pool keeps ``concurrency + spares`` workers. At most ``concurrency``
calls are admitted, so when a worker dies a spare is already idle and the
next call never waits for a fork; the zygote refills the pool in the
background.

A pool that runs out of descriptors (a flood of client connections) retries
a replacement shortly instead of declaring the fork server gone; only a
zygote that is really gone makes ``/_/health`` fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
from collections import deque
from collections.abc import Sequence
from typing import IO, cast

from ember_runtime import logs
from ember_runtime.http.reply import Reply
from ember_runtime.wire import request_worker
from ember_runtime.workers import CallTimedOut, WorkerConn

# Errors that mean "no descriptors right now", not "the zygote is gone".
_SHORT_OF_FDS = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}
RETRY_SPAWN_SECONDS = 0.2


def _pipe_file(fd: int, mode: str) -> IO[bytes]:
    """Wrap a pipe fd for the loop; the transport owns and closes it."""
    return open(fd, mode, buffering=0)


class WorkerPool:
    def __init__(self, ctrl: socket.socket, size: int, max_calls: int = 0) -> None:
        self.loop = asyncio.get_running_loop()
        self.ctrl = ctrl
        self.size = size
        self.max_calls = max_calls
        self.idle: deque[WorkerConn] = deque()
        self.waiters: deque[asyncio.Future[WorkerConn]] = deque()
        self.workers: set[WorkerConn] = set()
        self.starting = 0
        self.restarts = 0
        self.recycled = 0
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
        self._refill()
        await asyncio.wait_for(self.serving.wait(), within)

    def _refill(self) -> None:
        for _ in range(self.size - self.starting - len(self.workers)):
            if not self._spawn():
                return

    def _spawn(self) -> bool:
        if self.closing or self.broken:
            return False
        try:
            req_w, rep_r = request_worker(self.ctrl)
        except OSError as exc:
            if exc.errno in _SHORT_OF_FDS:
                # Out of descriptors (a flood of connections): not fatal.
                # Try again shortly; the pool serves on with what it has.
                logs.emit("warning", "cannot replace worker yet", error=str(exc))
                self.loop.call_later(RETRY_SPAWN_SECONDS, self._refill)
                return False
            self.broken = True
            logs.emit("error", "fork server is gone; cannot replace worker", error=str(exc))
            return False
        self._adopt(req_w, rep_r)
        return True

    def _adopt(self, req_w: int, rep_r: int) -> None:
        self.starting += 1
        self.loop.create_task(self._connect(req_w, rep_r))

    async def _connect(self, req_w: int, rep_r: int) -> None:
        # The write end first: once the read end is connected the worker's
        # hello can arrive, and from then on it may be handed a call.
        w = WorkerConn(self)
        try:
            w.writer, _ = await self.loop.connect_write_pipe(
                asyncio.BaseProtocol, _pipe_file(req_w, "wb")
            )
            req_w = -1
            await self.loop.connect_read_pipe(lambda: w, _pipe_file(rep_r, "rb"))
        except OSError as exc:
            for fd in (req_w, rep_r):
                with contextlib.suppress(OSError):
                    if fd >= 0:
                        os.close(fd)
            if w.writer is not None:
                w.writer.abort()
            self.starting -= 1
            logs.emit("warning", "could not connect a new worker", error=str(exc))
            self.loop.call_later(RETRY_SPAWN_SECONDS, self._refill)

    def _arrived(self, w: WorkerConn, pid: int) -> None:
        w.pid = pid
        try:
            w.pidfd = os.pidfd_open(pid)
        except OSError:
            w.ended()  # already gone (or no pidfd: the pipes still tell)
            return
        self.loop.add_reader(w.pidfd, w.ended)
        w.arrived = True
        self.starting -= 1
        self.last_spawn_seconds = self.loop.time() - w.spawned_at
        self.workers.add(w)
        self.release(w)
        self.serving.set()

    def _lost(self, w: WorkerConn) -> None:
        if w not in self.workers:
            if not w.arrived:
                # Died before saying hello (the zygote could not fork it?):
                # try again shortly rather than serve one worker short.
                w.arrived = True  # count it once
                self.starting -= 1
                self.loop.call_later(0.1, self._refill)
            return
        self.workers.discard(w)
        with contextlib.suppress(ValueError):
            self.idle.remove(w)
        if not self.closing:
            self.restarts += 1
            self._refill()

    def _retire(self, w: WorkerConn) -> None:
        """Replace a worker that has served ``max_calls`` (threads or memory
        a handler leaves behind go with it)."""
        self.workers.discard(w)
        w.kill()
        self.recycled += 1
        self._refill()

    def close(self) -> None:
        self.closing = True
        for w in list(self.workers):
            w.kill()
        self.ctrl.close()

    # --- calls -----------------------------------------------------------

    def take_idle(self) -> WorkerConn | None:
        while self.idle:
            w = self.idle.pop()
            if w.alive:
                return w
        return None

    async def acquire(self, within: float) -> WorkerConn:
        """An idle worker; raises ``CallTimedOut`` if none frees up in time."""
        w = self.take_idle()
        if w is not None:
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
        if self.max_calls and w.calls >= self.max_calls:
            self._retire(w)
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
