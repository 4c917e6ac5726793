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
    METHOD_NOT_ALLOWED,
    PAYLOAD_TOO_LARGE,
)
from ember_runtime.http.endpoint import Endpoint, Registry
from ember_runtime.http.refusing import BODY, HEAD, IDLE, Refusing, _Discard, _Reject
from ember_runtime.http.reply import Reply, fault_reply
from ember_runtime.http.streaming import StreamedBody

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class HttpConn(Refusing, asyncio.Protocol):
    __slots__ = (
        "body",
        "body_size",
        "chunked",
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
        self.lingering = False  # half-closed after a refusal, draining what the client sends
        self.local: tuple[str, int] | None = None  # see local_address
        self.reject: Reply | None = None  # the answer once everything before it is sent
        self.discarding = False  # nothing more is parsed (after a reject or an upgrade)
        self.eof = False
        self.read_paused = False
        self.write_paused = False
        self.pumping = False
        self.stream: StreamedBody | None = None  # the body being read, when streamed
        self.answering_stream: StreamedBody | None = None  # ... of the request being answered
        self.producer: Any = None  # what feeds a streamed answer (paused with writing)
        self.http11 = True
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
        self.chunked = False
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
        if self.stream is not None:
            self.stream.fail(None, "the client closed the connection")
        if self.answering_stream is not None:
            self.answering_stream.fail(None, "the client closed the connection")
        if self.producer is not None:
            self.producer.client_gone()

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
        except (httptools.HttpParserError, _Reject) as e:
            stream = self.stream
            if stream is not None:
                # The request was handed out already: its endpoint answers.
                self.discarding = True
                if not isinstance(e.__context__, _Discard):
                    stream.fail(BAD_REQUEST, "malformed request body")
                return
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
        if self.producer is not None:
            self.producer.pause_producing()

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.producer is not None:
            self.producer.resume_producing()
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
        elif n == 17 and name.lower() == b"transfer-encoding":
            self.chunked = b"chunked" in value.lower()

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
        threshold = self.limits.stream_threshold
        if threshold and (self.chunked or self.content_length > threshold):
            # Handed out now; the body follows through ``self.stream``.
            sb = self.stream = StreamedBody(self, -1 if self.chunked else self.content_length)
            keep_alive = parser.should_keep_alive() and not self.upgrade
            version = parser.get_http_version()
            self._enqueue((parser.get_method(), self.url, self.headers, sb, keep_alive,
                           self._rid(), version != "1.0"))  # fmt: skip

    def on_body(self, body: bytes) -> None:
        self.body_size += len(body)
        stream = self.stream
        if stream is not None:
            self.since = self.clock.now  # a streamed body times out when it stalls
            if self.body_size > self.limits.max_body_bytes:
                limit = self.limits.max_body_bytes
                stream.fail(PAYLOAD_TOO_LARGE, f"request body exceeds {limit} bytes")
                raise _Discard
            stream.feed(body)
            return
        if self.body_size > self.limits.max_body_bytes:
            self._too_large_body()
        self.body.append(body)

    def on_message_complete(self) -> None:
        parser = self.parser
        self.in_body = False
        self.head_seen = 0
        self.phase = IDLE
        self.since = self.clock.now
        stream = self.stream
        if stream is not None:  # handed out at its head already
            self.stream = None
            stream.finish()
            return
        body = b"".join(self.body) if len(self.body) != 1 else self.body[0]
        keep_alive = parser.should_keep_alive() and not (self.upgrade and parser.should_upgrade())
        # Only a streamed answer needs to know (chunked framing is HTTP/1.1).
        http11 = parser.get_http_version() != "1.0" if self.limits.stream_threshold else True
        self.body = []
        self._enqueue((parser.get_method(), self.url, self.headers, body, keep_alive,
                       self._rid(), http11))  # fmt: skip

    def _enqueue(self, item: tuple[Any, ...]) -> None:
        body = item[3]
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
