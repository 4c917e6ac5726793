"""One request from admission to its answer.

Its promises: it ends exactly once (``finish``), and the slot it took on a
pod is given back exactly once (``free``), whatever the pod, the network or
the caller do. A slot that leaked would make a pod look full for good.
What to do next (hold, retry, release) is the proxy's, reached through
the small ``Dispatcher`` protocol so this module imports nothing above it.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

from ember_operator.gateway import faults
from ember_operator.gateway.endpoints import Backend, Pod
from ember_operator.gateway.headers import response_head
from ember_operator.gateway.upstream import UpstreamConn
from ember_runtime import logs
from ember_runtime.errors import CallFault
from ember_runtime.http.reply import Reply, fault_reply

BACKOFF_SECONDS = 0.05  # a pod that answered 429 (full) gets nothing new this long
_OVERLOADED_BODY = b'"Runtime.Overloaded"'


class Dispatcher(Protocol):
    clock: float
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
        "conn",
        "deadline",
        "finished",
        "head",
        "head_only",
        "pod",
        "proxy",
        "request_id",
        "started",
        "upstream",
    )

    def __init__(
        self, proxy: Dispatcher, conn: Any, backend: Backend, head: bytes, request_id: str
    ) -> None:
        self.proxy = proxy
        self.conn = conn
        self.backend = backend
        self.head = head  # the request (head and body) as the pod gets it
        self.request_id = request_id
        self.head_only = False
        self.started = time.perf_counter()
        self.deadline = 0.0
        self.pod: Pod | None = None
        self.attempts = 0
        self.finished = False
        self.upstream: UpstreamConn | None = None

    def free(self) -> Pod | None:
        pod = self.pod
        if pod is not None:
            self.pod = None
            pod.inflight -= 1
            self.backend.inflight -= 1
            self.proxy.inflight.discard(self)
        return pod

    # --- upstream.Waiter --------------------------------------------------

    def answered(
        self, conn: UpstreamConn, status: int, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> None:
        pod = self.free()
        self.upstream = None
        proxy = self.proxy
        if pod is not None and conn.alive and not pod.gone:
            conn.last_used = proxy.clock
            pod.idle.append(conn)
        elif conn.transport is not None:
            conn.close()
        backend = self.backend
        if status == 429 and _OVERLOADED_BODY in body[:200] and not self.finished:
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
        self.upstream = None
        if self.finished:
            return
        if sent:
            self.fail(faults.UPSTREAM_FAILED, f"the function's pod failed the call: {why}")
        else:
            self.proxy.retry(self, pod, refused=False)

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
        self.conn.send(reply)
        self.proxy.answered(self, reply[0])
