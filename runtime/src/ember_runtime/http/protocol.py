"""One client connection: parse requests with httptools, hand each to an
``Endpoint``, and write the answers back in order.

Why a raw asyncio protocol rather than an ASGI server: the runtime's whole
job per call is parse, admit, forward, copy back, and uvicorn's ASGI layer
costs more than the worker hop itself (``bench/runtime_overhead.py``); it
also lets limits act while bytes are still arriving (413 before a body is
read, 431 while a head grows), which an ASGI app only sees afterwards.

What a hostile client can try, and what it gets here:
- slow heads or bodies: 408 and a close (``Connections`` sweeps timeouts);
  idle keep-alive connections are closed;
- huge heads, bodies or chunked trailers: 431 / 413 before they are buffered;
- pipelining without reading the answers: at most ``max_pipelined``
  requests are read ahead, and once ``write_buffer_bytes`` of answers are
  unsent the connection stops reading *and* answering until the client
  reads (flow control), so memory stays bounded;
- a malformed request after good ones: the good ones are answered, then 400
  and a close; trailers never override headers;
- half-closing after a request: it is still answered;
- CONNECT, ``GET *``, a missing or repeated Host on HTTP/1.1: 4xx, never
  the endpoint; ``Upgrade`` is ignored (answered, then closed).

Answers are written by ``send`` in a loop (``_pump``), never by recursion, so
a thousand pipelined requests answered synchronously cannot grow the stack.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, cast

import httptools

from ember_runtime.errors import (
    BAD_REQUEST,
    HEADERS_TOO_LARGE,
    METHOD_NOT_ALLOWED,
    PAYLOAD_TOO_LARGE,
    REQUEST_TIMEOUT,
    CallFault,
)
from ember_runtime.http.answering import Answering
from ember_runtime.http.endpoint import Endpoint, Registry, new_request_id
from ember_runtime.http.reply import Reply, fault_reply

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"

# What a connection is waiting for, for the timeout sweep.
IDLE, HEAD, BODY = 0, 1, 2


class _Reject(Exception):
    """Raised from a parser callback; ``HttpConn.reject`` says how to answer."""


class HttpConn(Answering, asyncio.Protocol):
    __slots__ = (
        "body",
        "body_size",
        "clock",
        "content_length",
        "head_seen",
        "head_size",
        "headers",
        "host_count",
        "in_body",
        "limits",
        "parser",
        "phase",
        "request_id",
        "since",
        "upgrade",
        "url",
        "want_continue",
    )

    def __init__(self, endpoint: Endpoint, conns: Registry) -> None:
        self.endpoint = endpoint
        self.conns = conns
        self.limits = conns.limits
        self.clock = conns.clock
        self.parser: Any = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.pipeline: deque[tuple[Any, ...]] = deque()
        self.pipeline_bytes = 0
        self.busy = False  # one request is with the endpoint; answers go in order
        self.head_only = False  # ... and it is a HEAD
        self.keep_alive = True  # ... and its connection may be kept
        self.reject: Reply | None = None  # the answer once everything before it is sent
        self.discarding = False  # nothing more is parsed (after a reject or an upgrade)
        self.eof = False
        self.read_paused = False
        self.write_paused = False
        self.pumping = False
        self.phase = IDLE
        self.since = self.clock.now
        self._reset()

    def _reset(self) -> None:
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.body_size = 0
        self.head_seen = 0
        self.head_size = 0
        self.host_count = 0
        self.in_body = False
        self.content_length = -1
        self.request_id = ""
        self.want_continue = False
        self.upgrade = False

    # --- asyncio.Protocol ------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        t = self.transport = cast(asyncio.Transport, transport)
        if not self.conns.admit(self):
            self.endpoint.rejected(503, "Runtime.Unavailable")
            t.write(self.conns.refusal)
            t.close()
            self.transport = None
            return
        t.set_write_buffer_limits(self.limits.write_buffer_bytes)

    def connection_lost(self, exc: Exception | None) -> None:
        self.conns.discard(self)
        self.transport = None
        # The parser holds this protocol's bound methods: break the cycle so
        # an aborted connection's buffers go now, not at the next full GC.
        self.parser = None
        self.pipeline.clear()
        self.body = []

    def data_received(self, data: bytes) -> None:
        if self.discarding or self.parser is None:
            return
        try:
            if not self.in_body:
                self.head_seen += len(data)
            self.parser.feed_data(data)
            if not self.in_body and self.phase == HEAD:
                if self.head_seen > self.limits.max_header_bytes + 4096:
                    self._too_large_head()
                if self.url and self._http09(data):
                    self._refuse(BAD_REQUEST, "HTTP/0.9 requests are not supported")
        except httptools.HttpParserUpgrade:
            # The request asking to upgrade was complete (and is answered
            # normally); what follows it is not HTTP we speak.
            self.discarding = True
            self._pump()
        except (httptools.HttpParserError, _Reject):
            if self.reject is None:
                self.reject = fault_reply(BAD_REQUEST, "malformed HTTP request", self._rid())
            self.discarding = True
            self._pause_reading()
            self._pump()

    def _http09(self, data: bytes) -> bool:
        """A request line that ended right after its target (``GET /``):
        llhttp would wait for headers that never come, so say no now."""
        if self.parser.get_http_version() != "0.0":
            return False
        end = data.rfind(self.url)
        return end >= 0 and data[end + len(self.url) : end + len(self.url) + 1] in (b"\r", b"\n")

    def eof_received(self) -> bool | None:
        # A client may half-close after its last request: answer it first.
        self.eof = True
        if self.busy or self.pipeline or self.reject is not None:
            return True
        return None

    def pause_writing(self) -> None:
        # Flow control: the client is not reading. Stop reading its requests
        # and stop answering them until the buffered answers drain.
        self.write_paused = True
        self.since = self.clock.now
        self._pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        self._pump()

    # --- httptools callbacks -------------------------------------------

    def on_message_begin(self) -> None:
        self._reset()
        self.phase = HEAD
        self.since = self.clock.now

    def on_url(self, url: bytes) -> None:
        self.url += url
        self.head_size += len(url)
        if self.head_size > self.limits.max_header_bytes:
            self._too_large_head()

    def on_header(self, name: bytes, value: bytes) -> None:
        self.head_size += len(name) + len(value) + 4
        if self.head_size > self.limits.max_header_bytes:
            self._too_large_head()
        if self.in_body:
            return  # a chunked trailer: counted, never merged into the headers
        self.headers.append((name, value))
        n = len(name)
        if n == 4 and name.lower() == b"host":
            self.host_count += 1
        elif n == 14 and name.lower() == b"content-length":
            try:
                self.content_length = int(value)
            except ValueError:
                self.content_length = -1
        elif n == 12 and name.lower() == b"x-request-id":
            rid = value.decode("latin-1")
            if 0 < len(rid) <= 128 and rid.isprintable():
                self.request_id = rid
        elif n == 6 and name.lower() == b"expect":
            self.want_continue = value.lower() == b"100-continue"
        elif n == 7 and name.lower() == b"upgrade":
            self.upgrade = True

    def on_headers_complete(self) -> None:
        self.in_body = True
        self.phase = BODY
        self.since = self.clock.now
        parser = self.parser
        # Only HTTP/1.0 may go without a Host (HTTP/0.9 request lines are
        # refused in data_received, before llhttp waits for headers).
        if self.host_count != 1 and (self.host_count > 1 or parser.get_http_version() != "1.0"):
            self._refuse(BAD_REQUEST, "an HTTP/1.1 request needs exactly one Host header")
        if not self.url.startswith(b"/"):
            # CONNECT's target is an authority, so the common case pays one
            # byte comparison here, not a method lookup.
            method = parser.get_method()
            if method == b"CONNECT":
                self._refuse(METHOD_NOT_ALLOWED, "CONNECT is not supported")
            if not (self.url == b"*" and method == b"OPTIONS"):
                self._refuse(BAD_REQUEST, "the request target must be a path starting with '/'")
        if self.content_length > self.limits.max_body_bytes:
            self._too_large_body()
        if self.want_continue and not self.busy and not self.pipeline and self.transport:
            self.transport.write(_CONTINUE)

    def on_body(self, body: bytes) -> None:
        self.body_size += len(body)
        if self.body_size > self.limits.max_body_bytes:
            self._too_large_body()
        self.body.append(body)

    def on_message_complete(self) -> None:
        parser = self.parser
        body = b"".join(self.body) if len(self.body) != 1 else self.body[0]
        keep_alive = parser.should_keep_alive() and not (self.upgrade and parser.should_upgrade())
        item = (parser.get_method(), self.url, self.headers, body, keep_alive, self._rid())
        self.body = []
        self.in_body = False
        self.head_seen = 0
        self.phase = IDLE
        self.since = self.clock.now
        if not self.busy and not self.pipeline and not self.write_paused and not self.pumping:
            self.pipeline_bytes += len(body)
            self._dispatch(item)  # the common case: nothing ahead of it
            return
        self.pipeline.append(item)
        self.pipeline_bytes += len(body)
        if len(self.pipeline) > 1 or self.busy:
            if (
                len(self.pipeline) >= self.limits.max_pipelined
                or self.pipeline_bytes >= self.limits.write_buffer_bytes
            ):
                self._pause_reading()
            return
        self._pump()

    # --- refusing --------------------------------------------------------

    def _rid(self) -> str:
        if not self.request_id:
            self.request_id = new_request_id()
        return self.request_id

    def _refuse(self, fault: CallFault, message: str) -> None:
        self.reject = fault_reply(fault, message, self._rid())
        raise _Reject

    def _too_large_head(self) -> None:
        self._refuse(
            HEADERS_TOO_LARGE,
            f"request line and headers exceed {self.limits.max_header_bytes} bytes",
        )

    def _too_large_body(self) -> None:
        self._refuse(PAYLOAD_TOO_LARGE, f"request body exceeds {self.limits.max_body_bytes} bytes")

    def timed_out(self, now: float) -> None:
        """Called by the sweep: end a connection that held its state too long."""
        limits = self.limits
        if self.write_paused:
            if now - self.since > limits.body_timeout and self.transport is not None:
                self.transport.abort()  # it will not read the answer it has
            return
        phase = self.phase
        if phase == IDLE:
            if not self.busy and not self.pipeline and now - self.since > limits.idle_timeout:
                self._close()
            return
        limit = limits.header_timeout if phase == HEAD else limits.body_timeout
        if now - self.since <= limit or self.discarding:
            return
        what = "request head" if phase == HEAD else "request body"
        self.reject = fault_reply(
            REQUEST_TIMEOUT, f"the {what} did not arrive within {limit:g}s", self._rid()
        )
        self.discarding = True
        self._pause_reading()
        self._pump()
