"""The runtime's endpoint on top of the HTTP core: admission, the worker hop
or the async handler, the ``/_/*`` control endpoints, and draining.

Its one promise: every admitted call finishes exactly once and gives its
slot back, whatever the handler or the worker does (raise, hang, die, return
garbage). A slot that leaks is a pod that reads "saturated" for good and is
dropped from service while its liveness probe still passes, so each path
that can end a call funnels into ``finish``, which ignores a second ending.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import TYPE_CHECKING, Any

from ember_runtime import logs, pod
from ember_runtime.config import Settings
from ember_runtime.contract import Handler
from ember_runtime.control import control_answer
from ember_runtime.errors import (
    FORBIDDEN,
    INTERNAL,
    OVERLOADED,
    TIMEOUT,
    WORKER_CRASHED,
    CallFault,
)
from ember_runtime.http.connections import Connections
from ember_runtime.http.endpoint import Headers
from ember_runtime.http.protocol import HttpConn
from ember_runtime.http.reply import Reply, control_reply, fault_reply
from ember_runtime.invoke import invoke_async, log_call_fault
from ember_runtime.limits import Limiter
from ember_runtime.metrics import Metrics
from ember_runtime.pool import WorkerPool
from ember_runtime.workers import CallTimedOut, WorkerDied

if TYPE_CHECKING:
    from ember_runtime.signing import Verifier

_METHODS = {m.encode(): m for m in ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")}

_METRICS = pod.METRICS_PATH.encode()

SWEEP_SECONDS = 0.05


class Job:
    """One admitted (or queued) invocation and where its answer goes."""

    __slots__ = ("app", "conn", "finished", "request", "request_id", "started")

    def __init__(self, app: App, conn: HttpConn, request: Any, request_id: str) -> None:
        self.app = app
        self.conn = conn
        self.request = request  # the wire tuple a worker or async handler gets
        self.request_id = request_id
        self.started = time.perf_counter()
        self.finished = False

    @property
    def deadline(self) -> float:
        """When waiting in the queue turns into a 504 (perf_counter clock)."""
        return self.started + self.app.settings.timeout_seconds

    def done(self, reply: Reply | None, error: Exception | None) -> None:
        self.app.finish(self, reply, error)


class App:
    """State shared by every connection of one runtime process."""

    def __init__(
        self, settings: Settings, metrics: Metrics, conns: Connections, handler: Handler | None
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.conns = conns
        self.handler = handler  # set for async handlers, which run on this loop
        self.pool: WorkerPool | None = None
        self.limiter: Limiter[Job] = Limiter(settings.concurrency, settings.queue_depth)
        self.ready = False
        self.draining = False
        self.stopped = asyncio.Event()
        self.loop = asyncio.get_running_loop()
        self.running: dict[Job, tuple[asyncio.Task[None], float]] = {}  # async calls
        self._sweeps = 0
        # None: signing is off and calls pay nothing for it. Imported only
        # when on, so the boot path of an unsigned runtime stays hashlib-free.
        self.verifier: Verifier | None = None
        if settings.signing_key:
            from ember_runtime import signing

            self.verifier = signing.Verifier(settings.signing_key)

    # --- the Endpoint of the HTTP core -----------------------------------

    def handle(
        self,
        conn: HttpConn,
        method: bytes,
        path: bytes,
        query: bytes,
        headers: Headers,
        body: bytes,
        request_id: str,
    ) -> None:
        if path[:3] == b"/_/" or path == _METRICS:
            conn.send(control_reply(*control_answer(path, self)))
            return
        if self.verifier is not None and not self.signed(
            conn, method, path, query, headers, request_id
        ):
            return
        timeout = self.settings.timeout_seconds
        request = (
            request_id,
            _METHODS.get(method) or method.decode("latin-1"),
            path,
            query,
            headers,
            body,
            time.time() + timeout,
        )
        self.invoke(Job(self, conn, request, request_id))

    def signed(
        self,
        conn: HttpConn,
        method: bytes,
        path: bytes,
        query: bytes,
        headers: Headers,
        request_id: str,
    ) -> bool:
        """Whether the call carries a valid gateway signature; else answer 403."""
        assert self.verifier is not None
        target = path + b"?" + query if query else path
        why = self.verifier.check_call(
            headers, method, target, request_id, conn.local_address(), time.time()
        )
        if why is None:
            return True
        conn.send(self._fault(FORBIDDEN, why, request_id))
        self.metrics.observe(FORBIDDEN.status, FORBIDDEN.code, 0.0)
        return False

    def rejected(self, status: int, code: str) -> None:
        self.metrics.observe(status, code, 0.0)

    # --- invocations -----------------------------------------------------

    def invoke(self, job: Job) -> None:
        """Admit one invocation; ``job.conn.send`` gets the answer later.

        Admission, queueing and the worker hop are plain callbacks, with no
        task or future per call; only async handlers and a pool that is
        short of workers take a coroutine.
        """
        m = self.metrics
        if m.cold_start_seconds is None:
            m.first_call()
        lim = self.limiter
        if lim.try_enter():
            self._start(job)
        elif not lim.enqueue(job):
            reply = fault_reply(
                OVERLOADED,
                f"{lim.inflight} invocations in flight and {lim.queued} queued; retry later",
                job.request_id,
                [("retry-after", "1")],
            )
            job.finished = True
            job.conn.send(reply)
            m.observe(429, OVERLOADED.code, time.perf_counter() - job.started)

    def _start(self, job: Job) -> None:
        """Run an admitted job (it holds a slot)."""
        pool = self.pool
        if pool is None:
            task = self.loop.create_task(self._run_async(job))
            self.running[job] = (task, self.loop.time() + self.settings.timeout_seconds)
            return
        w = pool.take_idle()
        if w is not None:
            w.submit(job.request, self.loop.time() + self.settings.timeout_seconds, job.done)
        else:
            self.loop.create_task(self._run_when_a_worker_frees(job))

    def finish(self, job: Job, reply: Reply | None, error: Exception | None) -> None:
        if job.finished:
            return
        job.finished = True
        # The freed slot goes to the next queued call *before* this answer
        # is written: the worker (just released, so it is the one picked)
        # starts on it while this process does the client write, whose
        # loopback delivery costs more than the pipe write.
        nxt = self.limiter.leave()
        if nxt is not None:
            self._start(nxt)
        if reply is None:
            reply = self._error_reply(error, job.request_id)
        job.conn.send(reply)
        self.metrics.observe(reply[0], reply[1], time.perf_counter() - job.started)

    def _error_reply(self, error: Exception | None, request_id: str) -> Reply:
        timeout = self.settings.timeout_seconds
        if isinstance(error, CallTimedOut):
            return self._fault(
                TIMEOUT, f"invocation exceeded {timeout:g}s; worker recycled", request_id
            )
        if isinstance(error, TimeoutError):
            return self._fault(TIMEOUT, f"invocation exceeded {timeout:g}s", request_id)
        if error is None or isinstance(error, WorkerDied):
            return self._fault(
                WORKER_CRASHED, "the worker running the handler died; it was replaced", request_id
            )
        return self._fault(INTERNAL, f"the runtime failed this call: {error!r}", request_id)

    async def _run_when_a_worker_frees(self, job: Job) -> None:
        assert self.pool is not None
        timeout = self.settings.timeout_seconds
        try:
            w = await self.pool.acquire(timeout)
            w.submit(job.request, self.loop.time() + timeout, job.done)
        except Exception as exc:
            self.finish(job, None, exc)
        except BaseException:
            self.finish(job, None, CallTimedOut())
            raise

    async def _run_async(self, job: Job) -> None:
        assert self.handler is not None
        try:
            reply = await invoke_async(self.handler, self.settings.function, job.request)
        except asyncio.CancelledError:
            self.finish(job, None, TimeoutError())  # no-op when the sweep timed it out
            raise
        except BaseException as exc:  # a bug: the call fails, the pod serves on
            reply = self._fault(INTERNAL, f"the runtime failed this call: {exc!r}", job.request_id)
        finally:
            self.running.pop(job, None)
        self.finish(job, reply, None)

    def sweep(self) -> None:
        """Every ``SWEEP_SECONDS``: time out queued jobs, overdue workers and
        overdue async calls.

        One periodic timer instead of one per call keeps timers off the hot
        path; timeouts fire up to ``SWEEP_SECONDS`` late.
        """
        now = time.perf_counter()
        for job in self.limiter.expired(now):
            job.finished = True
            reply = self._fault(TIMEOUT, "timed out waiting for a free slot", job.request_id)
            job.conn.send(reply)
            self.metrics.observe(reply[0], reply[1], now - job.started)
        loop_now = self.loop.time()
        if self.running:
            for job, (task, deadline) in list(self.running.items()):
                if deadline <= loop_now:
                    # Answer now: a handler that swallows its cancellation
                    # must not keep the caller (or the slot) waiting.
                    del self.running[job]
                    self.finish(job, None, TimeoutError())
                    task.cancel()
        if self.pool is not None:
            self.pool.expire_overdue(loop_now)
            # As PID 1 in a container this process inherits orphans (workers
            # of a zygote that died); reap them now and then (uvloop keeps
            # SIGCHLD for itself). Only with workers: in async mode user code
            # shares this process and may wait on its own children.
            self._sweeps += 1
            if self._sweeps % 20 == 0:
                _reap_children()
        self.loop.call_later(SWEEP_SECONDS, self.sweep)

    def _fault(self, fault: CallFault, message: str, request_id: str) -> Reply:
        log_call_fault(fault, request_id, self.settings.function, message)
        return fault_reply(fault, message, request_id)

    # --- draining --------------------------------------------------------

    def begin_drain(self, server: asyncio.AbstractServer) -> None:
        if self.draining:
            return
        self.draining = True
        self.conns.draining = True
        logs.emit(
            "info",
            "draining",
            function=self.settings.function,
            inflight=self.limiter.inflight,
            queued=self.limiter.queued,
        )
        server.close()
        self.loop.create_task(self._drain())

    async def _drain(self) -> None:
        try:
            await asyncio.wait_for(self.limiter.wait_idle(), self.settings.timeout_seconds + 1)
        except TimeoutError:
            logs.emit("warning", "drain timed out", inflight=self.limiter.inflight)
        self.conns.close_idle()
        for _ in range(100):
            if not len(self.conns):
                break
            await asyncio.sleep(0.01)
        self.stopped.set()


def _reap_children() -> None:
    for _ in range(1024):
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
