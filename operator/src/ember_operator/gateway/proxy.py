"""The gateway's endpoint on the HTTP core: route, admit, hold or forward,
answer (each request is a ``call.Call``).

Per request, on the hot path: one route lookup, one pass over the headers,
a pick among the function's pods, one write to a pooled connection, one
parse of the answer, one write back. Nothing waits on the API server.
Held requests (no pod has room, or none is ready) wait in the function's
bounded queue; the activator wakes the function and ``release`` hands them
out the moment a pod can serve. Timeouts are checked by one sweep.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any

from ember_operator.gateway import faults
from ember_operator.gateway.activator import Activator
from ember_operator.gateway.call import Call
from ember_operator.gateway.config import GatewaySettings
from ember_operator.gateway.endpoints import Backend, Pod, backend_stats
from ember_operator.gateway.headers import CHUNKED, request_head
from ember_operator.gateway.metrics import GatewayMetrics
from ember_operator.gateway.relay import BodyRelay
from ember_operator.gateway.routes import RouteTable
from ember_operator.gateway.signer import Signer
from ember_operator.gateway.sweep import sweep
from ember_operator.gateway.upstream import connect
from ember_runtime import logs
from ember_runtime.errors import CallFault
from ember_runtime.http.endpoint import Headers
from ember_runtime.http.protocol import HttpConn
from ember_runtime.http.reply import fault_reply
from ember_runtime.http.streaming import StreamedBody

SWEEP_SECONDS = 0.05
MAX_ATTEMPTS = 3  # connection attempts per call before it is held for a new pod


class Proxy:
    """State shared by every client connection: the routes, the backends."""

    def __init__(
        self,
        settings: GatewaySettings,
        metrics: GatewayMetrics,
        activator: Activator,
        signer: Signer | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.activator = activator
        self.signer = signer
        self.table = RouteTable()
        self.backends: dict[tuple[str, str], Backend] = {}
        self.inflight: set[Call] = set()
        self.held_bytes = 0
        self.draining = False
        self.loop = asyncio.get_running_loop()
        self.clock = self.loop.time()
        self._timer: asyncio.TimerHandle | None = None
        self.margin = settings.timeout_margin_seconds
        self.hold_timeout = settings.activation_timeout_seconds
        self.buffer_limit = settings.stream_threshold_bytes
        self.stall_seconds = settings.body_timeout_seconds
        # Serves ``/async/...`` (the async invocation API) when set; an
        # Endpoint of the HTTP core, like this proxy.
        self.async_endpoint: Any = None
        activator.on_usable = self.release

    # --- the Endpoint of the HTTP core ------------------------------------

    def handle(
        self,
        conn: HttpConn,
        method: bytes,
        path: bytes,
        query: bytes,
        headers: Headers,
        body: bytes | StreamedBody,
        request_id: str,
    ) -> None:
        if path.startswith(b"/async/") and self.async_endpoint is not None:
            # It gathers a streamed body itself, bounded by the async limit.
            self.async_endpoint.handle(conn, method, path, query, headers, body, request_id)
            return
        match = self.table.lookup(path)
        if match is None:
            return self._refuse(
                conn, faults.NOT_FOUND, f"no route for {path.decode('latin-1')}", request_id
            )
        key, fn_path, route = match
        if route is not None and method not in route.methods:
            return self._refuse(
                conn,
                faults.METHOD_NOT_ALLOWED,
                f"{method.decode('latin-1')} is not allowed on {route.path}",
                request_id,
                [("allow", route.allow)],
            )
        backend = self.backends.get(key)
        if backend is None:
            return self._refuse(
                conn, faults.NOT_FOUND, f"Function {key[0]}/{key[1]} does not exist", request_id
            )
        target = fn_path + b"?" + query if query else fn_path
        rid = request_id.encode("latin-1")
        t = conn.transport
        peer = t.get_extra_info("peername") if t is not None else None
        client_ip = peer[0].encode() if peer else b"unknown"
        if isinstance(body, bytes):
            length = len(body)
        else:  # streamed: its declared length, or none (chunked)
            length = body.length if body.length >= 0 else CHUNKED
        head = request_head(method, target, headers, rid, client_ip, length)
        call = Call(
            self, conn, backend, head + body if isinstance(body, bytes) else head, request_id
        )
        if isinstance(body, StreamedBody):
            call.relay = BodyRelay(call, body, self.settings.write_buffer_bytes)
        if self.signer is not None:  # signed per pod, as each attempt goes out
            call.signing = (self.signer, key, method, target, len(head))
        call.head_only = method == b"HEAD"
        backend.requests_total += 1
        if not backend.held:
            pod = backend.pick()
            if pod is not None:
                self.dispatch(call, pod)
                return
        self.hold(call)

    def rejected(self, status: int, code: str) -> None:
        self.metrics.rejected(status)

    def _refuse(
        self,
        conn: HttpConn,
        fault: CallFault,
        message: str,
        request_id: str,
        extra: list[tuple[str, str]] | None = None,
    ) -> None:
        conn.send(fault_reply(fault, message, request_id, extra))
        self.metrics.unrouted(fault.status)

    # --- forwarding -------------------------------------------------------

    def dispatch(self, call: Call, pod: Pod) -> None:
        pod.inflight += 1
        call.backend.inflight += 1
        call.pod = pod
        call.deadline = self.clock + call.backend.timeout_seconds + self.margin
        self.inflight.add(call)
        idle = pod.idle
        while idle:
            conn = idle.pop()
            if conn.alive:
                call.start_on(conn)
                return
        self.loop.create_task(self._connect_and_send(call, pod))

    async def _connect_and_send(self, call: Call, pod: Pod) -> None:
        try:
            conn = await connect(pod.addr[0], pod.addr[1], self.buffer_limit)
        except (OSError, TimeoutError) as e:
            self.free_and_retry(call, pod, f"{e!r}")
            return
        if call.finished or call.pod is not pod:  # timed out meanwhile
            conn.close()
            return
        call.start_on(conn)

    def free_and_retry(self, call: Call, pod: Pod, why: str) -> None:
        call.free()
        if not call.finished:
            logs.emit(
                "info",
                "pod refused a connection; trying another",
                request_id=call.request_id,
                function=call.backend.name,
                pod=f"{pod.addr[0]}:{pod.addr[1]}",
                error=why,
            )
            self.retry(call, pod, refused=True)

    def retry(self, call: Call, pod: Pod | None, *, refused: bool) -> None:
        """The request never reached a function: send it elsewhere, or hold it."""
        backend = call.backend
        if refused and pod is not None and not pod.gone:
            pod.suspect = True  # probed again before it gets another call
            pod.close_idle()
            backend.refresh()
        call.attempts += 1
        if call.attempts < MAX_ATTEMPTS and not backend.held:
            other = backend.pick()
            if other is not None:
                self.dispatch(call, other)
                return
        self.hold(call, front=True)

    # --- holding ----------------------------------------------------------

    def hold(self, call: Call, front: bool = False) -> None:
        backend = call.backend
        size = len(call.head)
        if not front:
            if self.draining:
                return call.fail(faults.UNAVAILABLE, "the gateway is shutting down")
            if backend.full or self.held_bytes + size > self.settings.max_held_bytes:
                call.finished = True
                reply = fault_reply(
                    faults.OVERLOADED,
                    f"{len(backend.held)} requests already wait for Function {backend.name};"
                    " retry later",
                    call.request_id,
                    [("retry-after", "1")],
                )
                call.conn.send(reply)
                self.answered(call, 503)
                return
        call.deadline = call.started + self.hold_timeout
        self.held_bytes += size
        if front:
            backend.held.appendleft(call)
        else:
            backend.held.append(call)
        if not backend.usable and backend.cold_call is None:
            backend.cold_call = call
        self.activator.wake(backend)

    def release(self, backend: Backend) -> None:
        """Hand held requests to pods with room, oldest first."""
        held = backend.held
        while held:
            pod = backend.pick()
            if pod is None:
                return
            call = held.popleft()
            self.held_bytes -= len(call.head)
            if not call.finished:
                self.dispatch(call, pod)

    # --- answers and timeouts ---------------------------------------------

    def answered(self, call: Call, status: int) -> None:
        backend = call.backend
        seconds = time.perf_counter() - call.started
        self.metrics.observe(backend.name, status, seconds)
        if call is backend.cold_call:
            backend.cold_call = None
            self.metrics.cold_start(backend.name, seconds)
            logs.emit(
                "info",
                "cold start answered",
                request_id=call.request_id,
                function=backend.name,
                seconds=round(seconds, 4),
                status=status,
            )
        if self.settings.access_log:
            logs.emit(
                "info",
                "request",
                request_id=call.request_id,
                function=backend.name,
                status=status,
                seconds=round(seconds, 6),
            )

    def start(self) -> None:
        self._sweep()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _sweep(self) -> None:
        self.clock = self.loop.time()
        sweep(self)
        self._timer = self.loop.call_later(SWEEP_SECONDS, self._sweep)

    def remove_backend(self, key: tuple[str, str]) -> None:
        """The Function is gone: its held requests get 404, its pods' pooled
        connections close (calls in flight finish)."""
        backend = self.backends.pop(key, None)
        if backend is None:
            return
        backend.close()
        held, backend.held = list(backend.held), deque()
        for call in held:
            self.held_bytes -= len(call.head)
            call.fail(faults.NOT_FOUND, f"Function {backend.name} was deleted")

    def stats(self) -> dict[str, Any]:
        return backend_stats(self.backends.values())
