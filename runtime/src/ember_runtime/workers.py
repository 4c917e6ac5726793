"""One worker as the server sees it: two pipes, a pidfd, at most one call.

A worker is over when its process exits, not when its pipes close: a child
the handler forked may hold the pipes open long after the worker crashed.
So each worker is watched through a pidfd, leads its own process group, and
is ended with the whole group (the handler's children included). The pool
(``pool.WorkerPool``) decides when workers come and go; this module only
carries calls and reports what happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable
from typing import Protocol

from ember_runtime.http.reply import Reply
from ember_runtime.wire import HEADER_LEN, frame, frame_end, loads


class Pool(Protocol):
    """What a worker tells its pool (``pool.WorkerPool``)."""

    loop: asyncio.AbstractEventLoop

    def _arrived(self, w: WorkerConn, pid: int) -> None: ...

    def _lost(self, w: WorkerConn) -> None: ...

    def release(self, w: WorkerConn) -> None: ...


class WorkerDied(Exception):
    """The worker exited (or its pipes closed) with a call in progress."""


class CallTimedOut(Exception):
    """The call passed its deadline; the worker was killed."""


Done = Callable[["Reply | None", "Exception | None"], None]


class WorkerConn(asyncio.Protocol):
    """One worker, seen from the server: two pipes, a pidfd, at most one call.

    Calls complete through a plain callback rather than a future and a task:
    on the hot path that is the difference between the hop costing more or
    less than a bare ASGI server's own per-request overhead.
    """

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.pid = 0
        self.pidfd = -1
        self.transport: asyncio.BaseTransport | None = None  # replies (read end)
        self.writer: asyncio.WriteTransport | None = None  # requests (write end)
        self.buf = bytearray()
        self.on_done: Done | None = None
        self.deadline = 0.0  # loop.time() by which the current call must answer
        self.alive = True
        self.arrived = False  # said hello and joined the pool
        self.calls = 0
        self.spawned_at = pool.loop.time()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        # Common case: exactly one whole reply, no buffering needed.
        if not buf and self.on_done is not None and frame_end(data) == len(data) and self.pid:
            self._answered(loads(memoryview(data)[HEADER_LEN:]))
            return
        buf += data
        while end := frame_end(buf):
            msg = loads(memoryview(buf)[HEADER_LEN:end])
            del buf[:end]
            if not self.pid:
                self.pool._arrived(self, int(msg))
            elif self.on_done is not None:
                self._answered(msg)

    def _answered(self, reply: Reply) -> None:
        done, self.on_done = self.on_done, None
        self.pool.release(self)
        if done is not None:
            done(reply, None)

    def connection_lost(self, exc: Exception | None) -> None:
        self.ended()

    def ended(self) -> None:
        """The process exited or its pipes closed: fail its call, replace it."""
        if not self.alive and self.on_done is None and self.transport is None:
            return
        self.kill()
        done, self.on_done = self.on_done, None
        self.transport = None
        self.pool._lost(self)
        if done is not None:
            done(None, WorkerDied())

    def submit(self, request: object, deadline: float, done: Done) -> None:
        """Send one request; ``done(reply, None)`` or ``done(None, error)`` follows.

        ``deadline`` is on the loop clock; ``WorkerPool.expire_overdue``
        enforces it. A worker that is already gone answers ``WorkerDied``
        on the next loop turn, never raises.
        """
        writer = self.writer
        if not self.alive or writer is None or writer.is_closing() or self.on_done is not None:
            self.pool.loop.call_soon(done, None, WorkerDied())
            return
        self.on_done = done
        self.deadline = deadline
        self.calls += 1
        writer.write(frame(request))

    def expire(self) -> None:
        done, self.on_done = self.on_done, None
        if done is not None:
            self.kill()
            done(None, CallTimedOut())

    def kill(self) -> None:
        """Kill the process group and drop the pipes and the pidfd."""
        self.alive = False
        if self.pidfd >= 0:
            # Through the pidfd: never a stranger that reused the pid.
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
        if self.pid:
            # The worker leads its own group: the handler's children go too.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)
        if self.pidfd >= 0:
            self.pool.loop.remove_reader(self.pidfd)
            os.close(self.pidfd)
            self.pidfd = -1
        if self.writer is not None:
            self.writer.abort()
        if self.transport is not None:
            self.transport.close()
