"""One request from admission to its answer.

Its promises: it ends exactly once (``finish``, or ``abort`` once an
answer has begun), and the slot it took on a pod is given back exactly
once (``free``), whatever the pod, the network or the caller do. A slot
that leaked would make a pod look full for good. What to do next (hold,
retry, release) is the proxy's, reached through the small ``Dispatcher``
protocol so this module imports nothing above it.

Bodies: a small answer comes whole (``answered``); a long one streams
(``response_start`` … ``response_end``) and the caller's reading paces
the pod's writing (the client connection calls ``pause_producing``). A
long request body streams the other way through a ``relay.BodyRelay``.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

from ember_operator.gateway import faults
from ember_operator.gateway.endpoints import Backend, Pod
from ember_operator.gateway.headers import CHUNKED, UNTIL_CLOSE, response_head, signed
from ember_operator.gateway.relay import LAST_CHUNK, BodyRelay, chunk
from ember_operator.gateway.upstream import UpstreamConn
from ember_runtime import logs
from ember_runtime.errors import CallFault
from ember_runtime.http.reply import Reply, fault_reply

BACKOFF_SECONDS = 0.05  # a pod that answered 429 (full) gets nothing new this long
_OVERLOADED_BODY = b'"Runtime.Overloaded"'
CLIENT_GONE = 499  # recorded (never sent) when the caller left first
_NEVER = float("inf")


class Dispatcher(Protocol):
    clock: float
    stall_seconds: float
    inflight: set[Any]

    def hold(self, call: Call, front: bool = False) -> None: ...

    def release(self, backend: Backend) -> None: ...

    def retry(self, call: Call, pod: Pod | None, *, refused: bool) -> None: ...

    def answered(self, call: Call, status: int) -> None: ...


class Call:
    """One request from admission to its answer."""

    __slots__ = (
        "attempts",
        "backend",
        "chunked",
        "conn",
        "deadline",
        "finished",
        "head",
        "head_only",
        "pod",
        "proxy",
        "relay",
        "request_id",
        "responding",
        "signing",
        "started",
        "status",
        "upstream",
    )

    def __init__(
        self, proxy: Dispatcher, conn: Any, backend: Backend, head: bytes, request_id: str
    ) -> None:
        self.proxy = proxy
        self.conn = conn
        self.backend = backend
        self.head = head  # the request as the pod gets it (with its body, unless streamed)
        self.request_id = request_id
        self.head_only = False
        self.started = time.perf_counter()
        self.deadline = 0.0
        self.pod: Pod | None = None
        self.attempts = 0
        self.finished = False
        self.upstream: UpstreamConn | None = None
        self.relay: BodyRelay | None = None
        self.responding = False  # an answer's head went to the caller
        self.chunked = False
        self.status = 0
        # (signer, function, method, target, the length of the head before its body)
        self.signing: tuple[Any, Any, bytes, bytes, int] | None = None

    def free(self) -> Pod | None:
        pod = self.pod
        if pod is not None:
            self.pod = None
            pod.inflight -= 1
            self.backend.inflight -= 1
            self.proxy.inflight.discard(self)
        return pod

    def start_on(self, conn: UpstreamConn) -> None:
        """Send the request on ``conn`` (the rest of a streamed body follows)."""
        self.upstream = conn
        data = self.head
        if self.signing is not None and self.pod is not None:
            signer, function, method, target, head_len = self.signing
            sig = signer.sign(function, method, target, self.request_id, self.pod.address)
            data = signed(data, head_len, sig)
        relay = self.relay
        if relay is None:
            conn.send(self, data, self.head_only)
            return
        conn.send(self, data + relay.opening(), self.head_only, relay.done)
        if self.upstream is conn:  # not failed at once
            relay.connected(conn)

    def _unhook(self) -> UpstreamConn | None:
        conn, self.upstream = self.upstream, None
        if self.relay is not None:
            self.relay.disconnected()
        return conn

    def _pool(self, pod: Pod | None, conn: UpstreamConn) -> None:
        if pod is not None and conn.alive and not pod.gone:
            conn.last_used = self.proxy.clock
            pod.idle.append(conn)
        elif conn.transport is not None:
            conn.close()

    # --- upstream.Waiter: a whole answer ----------------------------------------

    def answered(
        self, conn: UpstreamConn, status: int, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> None:
        pod = self.free()
        self._unhook()
        self._pool(pod, conn)
        proxy = self.proxy
        backend = self.backend
        replayable = self.relay is None or self.relay.replayable
        if status == 429 and _OVERLOADED_BODY in body[:200] and not self.finished and replayable:
            # The runtime refused it before running it (another gateway
            # replica filled the pod): wait here for a slot instead, and give
            # that pod a moment before it gets another call.
            if pod is not None:
                pod.backoff_until = proxy.clock + BACKOFF_SECONDS
                backend.refresh()
            proxy.hold(self, front=True)
            proxy.release(backend)
            return
        if backend.held:
            proxy.release(backend)
        head = response_head(status, headers, len(body), self.head_only)
        self.finish((status, "", head, body))

    def failed(self, conn: UpstreamConn, sent: bool, why: str) -> None:
        pod = self.free()
        self._unhook()
        if self.finished:
            return
        if self.responding:
            self.abort(f"the function's pod failed mid-answer: {why}")
        elif sent or not (self.relay is None or self.relay.replayable):
            self.fail(faults.UPSTREAM_FAILED, f"the function's pod failed the call: {why}")
        else:
            self.proxy.retry(self, pod, refused=False)

    # --- upstream.Waiter: a streamed answer ---------------------------------------

    def response_start(
        self, conn: UpstreamConn, status: int, headers: list[tuple[bytes, bytes]], length: int
    ) -> None:
        client = self.conn
        framing = length if length >= 0 else CHUNKED if client.http11 else UNTIL_CLOSE
        self.responding = True
        self.status = status
        self.chunked = framing == CHUNKED
        client.producer = self
        client.start_answer(response_head(status, headers, framing, False), framing == UNTIL_CLOSE)
        self.deadline = self.proxy.clock + self.proxy.stall_seconds

    def response_data(self, data: bytes) -> None:
        self.conn.write_body(chunk(data) if self.chunked else data)
        if self.deadline != _NEVER:
            self.deadline = self.proxy.clock + self.proxy.stall_seconds

    def response_end(self, conn: UpstreamConn) -> None:
        if self.chunked:
            self.conn.write_body(LAST_CHUNK)
        pod = self.free()
        self._unhook()
        self._pool(pod, conn)
        if self.finished:
            return
        self.finished = True
        if self.relay is not None:
            self.relay.drop()
        self.conn.end_answer()
        self.proxy.answered(self, self.status)
        if self.backend.held:
            self.proxy.release(self.backend)

    def upstream_paused(self, paused: bool) -> None:
        if self.relay is not None:
            self.relay.paused(paused)

    # --- the client connection's producer (a streamed answer) -----------------------

    def pause_producing(self) -> None:
        if self.upstream is not None:
            self.upstream.pause_reading()
        self.deadline = _NEVER  # the caller is slow, not the pod (the core times it)

    def resume_producing(self) -> None:
        if self.upstream is not None:
            self.upstream.resume_reading()
        if self.responding:
            self.deadline = self.proxy.clock + self.proxy.stall_seconds

    def client_gone(self) -> None:
        self.body_failed(None, "the caller closed the connection")

    # --- the request body (relay.Failing) --------------------------------------------

    def body_failed(self, fault: CallFault | None, message: str) -> None:
        """The caller's body will not be complete: the pod has part of a
        request, so its connection goes; the caller hears why (413, 408),
        unless it left or an answer already began."""
        if self.finished:
            return
        self.free()
        conn = self._unhook()
        if conn is not None:
            conn.waiter = None
            conn.abort()
        if fault is None or self.responding:
            self.abort(message)
        else:
            self.fail(fault, message)

    # --- ending -------------------------------------------------------------------

    def fail(
        self, fault: CallFault, message: str, extra: list[tuple[str, str]] | None = None
    ) -> None:
        if self.finished:
            return
        logs.emit(
            "warning",
            message,
            request_id=self.request_id,
            function=self.backend.name,
            error=fault.code,
        )
        self.finish(fault_reply(fault, message, self.request_id, extra))

    def finish(self, reply: Reply) -> None:
        if self.finished:
            return
        self.finished = True
        if self.relay is not None:
            self.relay.drop()
        self.conn.send(reply)
        self.proxy.answered(self, reply[0])

    def abort(self, why: str) -> None:
        """End a call that cannot be answered any more: its answer began (the
        caller sees it cut short), or the caller left."""
        if self.finished:
            return
        self.finished = True
        self.free()
        conn = self._unhook()
        if conn is not None:
            conn.waiter = None
            conn.abort()
        if self.relay is not None:
            self.relay.drop()
        status = self.status if self.responding else CLIENT_GONE
        client = self.conn
        client.producer = None
        if client.transport is not None:
            client.transport.abort()
        logs.emit("warning", why, request_id=self.request_id, function=self.backend.name)
        self.proxy.answered(self, status)
