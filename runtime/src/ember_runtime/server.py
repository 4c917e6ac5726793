"""The connection owner: HTTP/1.1 on a raw asyncio protocol with httptools
on uvloop, limits, the ``/_/*`` endpoints, and draining.

Why not an ASGI server: the runtime's whole job per call is parse, admit,
forward to a worker, copy the answer back. Measured on the project's
machines, uvicorn's ASGI layer (scope dicts, receive/send coroutines) costs
more than the worker hop itself; parsing with the same httptools uvicorn
uses, directly in a protocol, leaves room for the hop and still beats a bare
uvicorn hello world (see ``bench/runtime_overhead.py``). It also lets the
runtime answer 413/431 while bytes are still arriving, which an ASGI app
only sees after the server has buffered them.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import time
from collections import deque
from collections.abc import Sequence
from typing import Any, cast

import httptools

from ember_runtime import logs
from ember_runtime.config import Settings
from ember_runtime.contract import Handler
from ember_runtime.errors import (
    BAD_REQUEST,
    HEADERS_TOO_LARGE,
    OVERLOADED,
    PAYLOAD_TOO_LARGE,
    TIMEOUT,
    WORKER_CRASHED,
    CallFault,
)
from ember_runtime.invoke import Reply, fault_reply, invoke_async, log_call_fault
from ember_runtime.limits import Limiter
from ember_runtime.pool import CallTimedOut, WorkerPool
from ember_runtime.signals import Signals
from ember_runtime.wire import http_head

_CLOSE = b"connection: close\r\n"
_JSON = [("content-type", "application/json")]
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_MAX_PIPELINE = 16
_METHODS = {m.encode(): m for m in ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")}


_ID_PREFIX = os.urandom(8).hex()
_ids = itertools.count(1)


def _new_request_id() -> str:
    # A random per-process prefix and a counter: unique, and no syscall per call.
    return f"{_ID_PREFIX}{next(_ids):016x}"


SWEEP_SECONDS = 0.05


class Job:
    """One admitted (or queued) invocation and where its answer goes."""

    __slots__ = (
        "app",
        "body",
        "conn",
        "headers",
        "method",
        "path",
        "query",
        "request_id",
        "started",
    )

    def __init__(
        self,
        app: App,
        conn: HttpConn,
        method: bytes,
        path: bytes,
        query: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        request_id: str,
    ) -> None:
        self.app = app
        self.conn = conn
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
        self.request_id = request_id
        self.started = time.perf_counter()

    @property
    def deadline(self) -> float:
        """When waiting in the queue turns into a 504 (perf_counter clock)."""
        return self.started + self.app.settings.timeout_seconds

    def done(self, reply: Reply | None, error: Exception | None) -> None:
        self.app.finish(self, reply, error)


class App:
    """State shared by every connection of one runtime process."""

    def __init__(self, settings: Settings, signals: Signals, handler: Handler | None) -> None:
        self.settings = settings
        self.signals = signals
        self.handler = handler  # set for async handlers, which run on this loop
        self.pool: WorkerPool | None = None
        self.limiter: Limiter[Job] = Limiter(settings.concurrency, settings.queue_depth)
        self.ready = False
        self.draining = False
        self.connections: set[HttpConn] = set()
        self.stopped = asyncio.Event()
        self.loop = asyncio.get_running_loop()
        self._sweeps = 0

    # --- control endpoints ----------------------------------------------

    def control(self, path: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        lim = self.limiter
        if path == b"/_/health":
            if self.pool is not None and self.pool.broken:
                return 503, list(_JSON), b'{"status":"fork server gone"}'
            return 200, list(_JSON), b'{"status":"ok"}'
        if path == b"/_/ready":
            if self.draining:
                return 503, list(_JSON), b'{"status":"draining"}'
            if not self.ready:
                return 503, list(_JSON), b'{"status":"starting"}'
            if lim.saturated:
                return 429, list(_JSON), b'{"status":"saturated"}'
            return 200, list(_JSON), b'{"status":"ready"}'
        pool = self.pool
        if path == b"/_/stats":
            body = self.signals.stats_json(
                inflight=lim.inflight,
                queued=lim.queued,
                concurrency=lim.concurrency,
                draining=self.draining,
                workers=len(pool.workers) if pool else 0,
                restarts=pool.restarts if pool else 0,
            )
            return 200, list(_JSON), body
        if path == b"/metrics" and self.signals.enabled:
            body = self.signals.prometheus(
                inflight=lim.inflight, queued=lim.queued, restarts=pool.restarts if pool else 0
            )
            return 200, [("content-type", "text/plain; version=0.0.4; charset=utf-8")], body
        return 404, list(_JSON), b'{"error":"not found"}'

    # --- invocations -----------------------------------------------------

    def invoke(self, job: Job) -> None:
        """Admit one invocation; ``job.conn.send`` gets the answer later.

        Admission, queueing and the worker hop are plain callbacks, with no
        task or future per call; only async handlers and a pool that is
        short of workers take a coroutine.
        """
        sig = self.signals
        if sig.cold_start_seconds is None:
            sig.first_call()
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
            job.conn.send(reply)
            sig.observe(429, OVERLOADED.code, time.perf_counter() - job.started)

    def _start(self, job: Job) -> None:
        """Run an admitted job (it holds a slot)."""
        timeout = self.settings.timeout_seconds
        req = (
            job.request_id,
            _METHODS.get(job.method) or job.method.decode("latin-1"),
            job.path,
            job.query,
            job.headers,
            job.body,
            time.time() + timeout,
        )
        pool = self.pool
        if pool is None:
            self.loop.create_task(self._run_async(job, req))
        elif pool.idle:
            pool.idle.pop().submit(req, self.loop.time() + timeout, job.done)
        else:
            self.loop.create_task(self._run_when_a_worker_frees(job, req))

    def finish(self, job: Job, reply: Reply | None, error: Exception | None) -> None:
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
        self.signals.observe(reply[0], reply[1], time.perf_counter() - job.started)

    def _error_reply(self, error: Exception | None, request_id: str) -> Reply:
        timeout = self.settings.timeout_seconds
        if isinstance(error, CallTimedOut):
            return self._fault(
                TIMEOUT, f"invocation exceeded {timeout:g}s; worker recycled", request_id
            )
        if isinstance(error, TimeoutError):
            return self._fault(TIMEOUT, f"invocation exceeded {timeout:g}s", request_id)
        return self._fault(
            WORKER_CRASHED, "the worker running the handler died; it was replaced", request_id
        )

    async def _run_when_a_worker_frees(self, job: Job, req: Any) -> None:
        assert self.pool is not None
        try:
            w = await self.pool.acquire(self.settings.timeout_seconds)
        except CallTimedOut as exc:
            self.finish(job, None, exc)
            return
        w.submit(req, self.loop.time() + self.settings.timeout_seconds, job.done)

    async def _run_async(self, job: Job, req: Any) -> None:
        assert self.handler is not None
        try:
            reply: Reply | None = await asyncio.wait_for(
                invoke_async(self.handler, self.settings.function, req),
                self.settings.timeout_seconds,
            )
            error: Exception | None = None
        except TimeoutError as exc:
            reply, error = None, exc
        self.finish(job, reply, error)

    def sweep(self) -> None:
        """Every ``SWEEP_SECONDS``: time out queued jobs and overdue workers.

        One periodic timer instead of one per call keeps timers off the hot
        path; timeouts fire up to ``SWEEP_SECONDS`` late.
        """
        now = time.perf_counter()
        for job in self.limiter.expired(now):
            reply = self._fault(TIMEOUT, "timed out waiting for a free slot", job.request_id)
            job.conn.send(reply)
            self.signals.observe(reply[0], reply[1], now - job.started)
        if self.pool is not None:
            self.pool.expire_overdue(self.loop.time())
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
        logs.emit(
            "info",
            "draining",
            function=self.settings.function,
            inflight=self.limiter.inflight,
            queued=self.limiter.queued,
        )
        server.close()
        asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        try:
            await asyncio.wait_for(self.limiter.wait_idle(), self.settings.timeout_seconds + 1)
        except TimeoutError:
            logs.emit("warning", "drain timed out", inflight=self.limiter.inflight)
        for conn in list(self.connections):
            conn.close_when_idle()
        for _ in range(100):
            if not self.connections:
                break
            await asyncio.sleep(0.01)
        self.stopped.set()


class _Reject(Exception):
    pass


class HttpConn(asyncio.Protocol):
    """One client connection: parse requests, answer them in order."""

    __slots__ = (
        "_keep_alive",
        "app",
        "body",
        "body_size",
        "busy",
        "content_length",
        "discarding",
        "head_seen",
        "head_size",
        "headers",
        "in_body",
        "loop",
        "parser",
        "pipeline",
        "reject",
        "request_id",
        "transport",
        "url",
        "want_continue",
    )

    def __init__(self, app: App) -> None:
        self.app = app
        self.loop = asyncio.get_running_loop()
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.pipeline: deque[tuple[Any, ...]] = deque()
        self.busy = False
        self.discarding = False
        self.reject: Reply | None = None
        self._keep_alive = True
        self._reset()

    def _reset(self) -> None:
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.body_size = 0
        self.head_seen = 0
        self.head_size = 0
        self.in_body = False
        self.content_length = -1
        self.request_id = ""
        self.want_continue = False

    # --- asyncio.Protocol ------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        self.app.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.app.connections.discard(self)
        self.transport = None

    def data_received(self, data: bytes) -> None:
        if self.discarding:
            return
        if not self.in_body:
            self.head_seen += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            pass
        except (httptools.HttpParserError, _Reject):
            if self.reject is None:
                self.reject = fault_reply(BAD_REQUEST, "malformed HTTP request", self._rid())
            self._refuse()
            return
        if not self.in_body and self.head_seen > self.app.settings.max_header_bytes + 4096:
            self._too_large_head()

    def eof_received(self) -> bool | None:
        return None

    # --- httptools callbacks -------------------------------------------

    def on_message_begin(self) -> None:
        self._reset()

    def on_url(self, url: bytes) -> None:
        self.url += url
        self.head_size += len(url)
        if self.head_size > self.app.settings.max_header_bytes:
            self._too_large_head()

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))
        self.head_size += len(name) + len(value) + 4
        if self.head_size > self.app.settings.max_header_bytes:
            self._too_large_head()
        if len(name) == 14 and name.lower() == b"content-length":
            try:
                self.content_length = int(value)
            except ValueError:
                self.content_length = -1
        elif len(name) == 12 and name.lower() == b"x-request-id":
            rid = value.decode("latin-1")
            if 0 < len(rid) <= 128 and rid.isprintable():
                self.request_id = rid
        elif len(name) == 6 and name.lower() == b"expect":
            self.want_continue = value.lower() == b"100-continue"

    def on_headers_complete(self) -> None:
        self.in_body = True
        limit = self.app.settings.max_body_bytes
        if self.content_length > limit:
            self._too_large_body()
        if self.want_continue and self.transport is not None and not self.busy:
            self.transport.write(_CONTINUE)

    def on_body(self, body: bytes) -> None:
        self.body_size += len(body)
        if self.body_size > self.app.settings.max_body_bytes:
            self._too_large_body()
        self.body.append(body)

    def on_message_complete(self) -> None:
        body = b"".join(self.body) if len(self.body) != 1 else self.body[0]
        item = (
            self.parser.get_method(),
            self.url,
            self.headers,
            body,
            self.parser.should_keep_alive(),
            self._rid(),
        )
        self.in_body = False
        self.head_seen = 0
        if self.busy:
            self.pipeline.append(item)
            if len(self.pipeline) >= _MAX_PIPELINE and self.transport is not None:
                self.transport.pause_reading()
        else:
            self._dispatch(item)

    # --- answering -----------------------------------------------------

    def _rid(self) -> str:
        if not self.request_id:
            self.request_id = _new_request_id()
        return self.request_id

    def _too_large_head(self) -> None:
        self.reject = fault_reply(
            HEADERS_TOO_LARGE,
            f"request line and headers exceed {self.app.settings.max_header_bytes} bytes",
            self._rid(),
        )
        raise _Reject

    def _too_large_body(self) -> None:
        self.reject = fault_reply(
            PAYLOAD_TOO_LARGE,
            f"request body exceeds {self.app.settings.max_body_bytes} bytes",
            self._rid(),
        )
        raise _Reject

    def _refuse(self) -> None:
        """Stop parsing; answer the rejection once earlier requests are answered."""
        self.discarding = True
        if not self.busy:
            self._send_reject()

    def _send_reject(self) -> None:
        reply, self.reject = self.reject, None
        t = self.transport
        if reply is None or t is None or t.is_closing():
            return
        self.pipeline.clear()
        status, code, head, body = reply
        self.app.signals.observe(status, code, 0.0)
        t.write(head + _CLOSE + b"\r\n" + body)
        # Half-close and keep reading (discarding) so the client reads the
        # answer instead of a reset caused by unread request bytes.
        if t.can_write_eof():
            t.write_eof()
            self.loop.call_later(5.0, t.abort)
        else:
            t.close()

    def _dispatch(self, item: tuple[Any, ...]) -> None:
        method, url, headers, body, keep_alive, request_id = item
        self.busy = True
        self._keep_alive = keep_alive
        path, _, query = url.partition(b"?")
        if path[:3] == b"/_/" or path == b"/metrics":
            status, hdrs, payload = self.app.control(path)
            self.send((status, "", http_head(status, hdrs, len(payload)), payload))
            return
        self.app.invoke(Job(self.app, self, method, path, query, headers, body, request_id))

    def send(self, reply: Reply) -> None:
        t = self.transport
        if t is not None and not t.is_closing():
            _status, _code, head, body = reply
            keep = self._keep_alive and not self.app.draining
            if keep:
                t.write(head + b"\r\n" + body)
            else:
                t.write(head + _CLOSE + b"\r\n" + body)
                t.close()
        self.busy = False
        if self.reject is not None:
            self._send_reject()
        elif self.pipeline and t is not None and not t.is_closing():
            if len(self.pipeline) < _MAX_PIPELINE:
                t.resume_reading()
            self._dispatch(self.pipeline.popleft())

    def close_when_idle(self) -> None:
        if not self.busy and self.transport is not None:
            self.transport.close()


def _reap_children() -> None:
    for _ in range(1024):
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


async def serve(
    settings: Settings,
    signals: Signals,
    pool_ctrl: Any | None,
    handler: Handler | None,
    requested: Sequence[tuple[int, int]] = (),
) -> int:
    """Serve until SIGTERM/SIGINT, drain, and return the exit status."""
    loop = asyncio.get_running_loop()
    app = App(settings, signals, handler)
    if pool_ctrl is not None:
        app.pool = WorkerPool(pool_ctrl, settings.pool_size)
        pool_ready = loop.create_task(app.pool.start(requested=requested))
    server = await loop.create_server(
        lambda: HttpConn(app), settings.host, settings.port, reuse_address=True, backlog=1024
    )
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, app.begin_drain, server)
    if pool_ctrl is not None:
        stopping = loop.create_task(app.stopped.wait())
        await asyncio.wait([pool_ready, stopping], return_when=asyncio.FIRST_COMPLETED)
        if not pool_ready.done():
            pool_ready.cancel()
            if app.pool is not None:
                app.pool.close()
            return 0
        stopping.cancel()
        if pool_ready.exception() is not None:
            logs.emit("error", "workers did not start", function=settings.function)
            if app.pool is not None:
                app.pool.close()
            return 1
    app.ready = True
    app.sweep()
    port = server.sockets[0].getsockname()[1] if server.sockets else settings.port
    logs.emit(
        "info",
        "ready",
        function=settings.function,
        port=port,
        boot_seconds=round(time.time() - signals.started_at, 4),
        workers=settings.pool_size if pool_ctrl is not None else 0,
        mode="workers" if pool_ctrl is not None else "event-loop",
    )
    await app.stopped.wait()
    if app.pool is not None:
        app.pool.close()
    logs.emit("info", "stopped", function=settings.function, requests_total=signals.requests_total)
    return 0
