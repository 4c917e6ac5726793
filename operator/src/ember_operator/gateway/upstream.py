"""Keep-alive connections from the gateway to function pods: a lean asyncio
protocol around httptools' response parser (the same parser family as the
HTTP core), one request at a time per connection.

Answers up to ``buffer_limit`` bytes are collected and handed over whole
(``Waiter.answered``: one write to the caller, and a 429 can be looked at
before it is passed on); a longer one, or one whose length is unknown past
that, streams (``response_start``, ``response_data``, ``response_end``),
and the caller's reading paces the pod's writing (``pause_reading``). A
streamed request body goes out through ``write`` after the head; the
connection is reused only once both the request and the answer ended.

Why not aiohttp or httpx: a proxy built on either reached about 0.17x the
requests/s of calling the runtime directly on this machine; a plain
protocol reached 0.63-0.75x. The pool is per pod (``endpoints.Pod.idle``):
a connection goes back to it after a complete keep-alive answer and is
closed after ``idle_seconds`` unused, well before the runtime's own 75 s,
so the gateway rarely writes into a connection the pod is closing.

What a failure means is decided by what got through. ``sent`` is False
(the request is retried elsewhere) only when the handler cannot have run
it: the connection was never made, or it ended without one byte of answer
and the pod's kernel reset our request. A pod resets a connection closed
with our bytes unread in it, or one our bytes reached after it closed
(the pod closed it idle, or began to drain, as our request crossed it): in
both, its runtime never read the request. A pod process that read the
request and then died sends a plain FIN and no reset; that is a 502, never
a retry, so nothing that reached a function is run twice. After a FIN with
a call on the connection we wait ``RESET_WAIT_SECONDS`` (many round trips)
for the reset before judging.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from typing import Any, Protocol, cast

import httptools


class Waiter(Protocol):
    """What an upstream connection reports to (``call.Call``)."""

    def answered(
        self, conn: UpstreamConn, status: int, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> None: ...

    def failed(self, conn: UpstreamConn, sent: bool, why: str) -> None: ...

    def response_start(
        self, conn: UpstreamConn, status: int, headers: list[tuple[bytes, bytes]], length: int
    ) -> None: ...

    def response_data(self, data: bytes) -> None: ...

    def response_end(self, conn: UpstreamConn) -> None: ...

    def upstream_paused(self, paused: bool) -> None:
        """The pod is not reading what we write (or reads again)."""


class UpstreamConn(asyncio.Protocol):
    __slots__ = (
        "body",
        "body_size",
        "buffer_limit",
        "got_bytes",
        "head_only",
        "headers",
        "keep_alive",
        "last_used",
        "length",
        "parser",
        "request_done",
        "streaming",
        "transport",
        "waiter",
    )

    def __init__(self, buffer_limit: int) -> None:
        self.buffer_limit = buffer_limit
        self.transport: asyncio.Transport | None = None
        self.parser: Any = httptools.HttpResponseParser(self)
        self.waiter: Waiter | None = None
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.body_size = 0
        self.got_bytes = False
        self.head_only = False
        self.keep_alive = True
        self.last_used = 0.0
        self.length = -1  # the answer's content-length, -1 when it has none
        self.streaming = False
        self.request_done = True

    # --- use --------------------------------------------------------------

    @property
    def alive(self) -> bool:
        t = self.transport
        return t is not None and not t.is_closing() and self.keep_alive

    def send(self, waiter: Waiter, data: bytes, head_only: bool, request_done: bool = True) -> None:
        """Write a request (``request_done``: all of it; else its body
        follows through ``write`` and ``end_request``)."""
        self.waiter = waiter
        self.head_only = head_only
        self.request_done = request_done
        self.got_bytes = False
        self.headers = []
        self.body = []
        self.body_size = 0
        self.length = -1
        self.streaming = False
        t = self.transport
        if t is None or t.is_closing():
            self.waiter = None
            waiter.failed(self, False, "connection closed before the request was sent")
            return
        t.write(data)

    def write(self, data: bytes) -> None:
        t = self.transport
        if t is not None and not t.is_closing():
            t.write(data)

    def end_request(self) -> None:
        self.request_done = True

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    # --- asyncio.Protocol -------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def pause_writing(self) -> None:
        if self.waiter is not None:
            self.waiter.upstream_paused(True)

    def resume_writing(self) -> None:
        if self.waiter is not None:
            self.waiter.upstream_paused(False)

    def pause_reading(self) -> None:
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as e:
            self._fail(True, f"malformed answer from the pod: {e}")

    def eof_received(self) -> bool | None:
        if self.waiter is not None and not self.got_bytes and self.transport is not None:
            # Ended with our request unanswered: was it read? Keep the socket
            # a moment to see whether the pod resets it (see the docstring).
            asyncio.get_running_loop().call_later(RESET_WAIT_SECONDS, self._judge_eof)
            return True
        return None  # close our side too

    def _judge_eof(self) -> None:
        t = self.transport
        if self.waiter is None or t is None:
            return
        sock = t.get_extra_info("socket")
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) if sock is not None else 0
        if err in _RESETS:
            self._fail(False, "the pod closed the connection before reading the request")
        else:
            self._fail(True, "the pod closed the connection without answering")

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.keep_alive = False
        if self.waiter is not None:
            why = f"connection lost: {exc!r}" if exc else "connection closed by the pod"
            reset = isinstance(exc, OSError) and exc.errno in _RESETS
            self._fail(self.got_bytes or not reset, why)
        self.parser = None

    def _fail(self, sent: bool, why: str) -> None:
        waiter, self.waiter = self.waiter, None
        self.keep_alive = False
        if self.transport is not None:
            self.transport.abort()
        if waiter is not None:
            waiter.failed(self, sent, why)

    # --- httptools callbacks ----------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))
        if len(name) == 14 and name.lower() == b"content-length" and value.isdigit():
            self.length = int(value)

    def on_headers_complete(self) -> None:
        # httptools cannot be told an answer is to a HEAD (no body follows
        # its content-length): finish here and do not reuse the connection.
        if self.head_only:
            self.keep_alive = False
            self._complete()
        elif self.length > self.buffer_limit:
            self._stream()

    def on_body(self, body: bytes) -> None:
        if self.streaming:
            if self.waiter is not None:
                self.waiter.response_data(body)
            return
        self.body_size += len(body)
        self.body.append(body)
        if self.body_size > self.buffer_limit:
            self._stream()

    def on_message_complete(self) -> None:
        waiter = self.waiter
        if waiter is None:
            return
        self.keep_alive = self.parser.should_keep_alive() and self.request_done
        if self.streaming:
            self.waiter = None
            if not self.keep_alive and self.transport is not None:
                self.transport.close()
            waiter.response_end(self)
            return
        self._complete()

    def _stream(self) -> None:
        """Too long to hold: pass the head, and what came, on now."""
        waiter = self.waiter
        if waiter is None:
            return
        self.streaming = True
        status = self.parser.get_status_code()
        waiter.response_start(self, status, self.headers, self.length)
        if self.body:
            body, self.body = b"".join(self.body), []
            waiter.response_data(body)

    def _complete(self) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is None:
            return
        body = self.body[0] if len(self.body) == 1 else b"".join(self.body)
        self.body = []
        status = self.parser.get_status_code()
        if not self.request_done:  # answered before the request ended: not reusable
            self.keep_alive = False
        if not self.keep_alive and self.transport is not None:
            self.transport.close()
        waiter.answered(self, status, self.headers, body)


_RESETS = (errno.ECONNRESET, errno.EPIPE)
# After a FIN with a request unanswered, how long to wait for the pod's
# reset (a round trip, and the pod's kernel; never its runtime).
RESET_WAIT_SECONDS = 0.05
CONNECT_SECONDS = 3.0


async def connect(host: str, port: int, buffer_limit: int) -> UpstreamConn:
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(CONNECT_SECONDS):
        _t, conn = await loop.create_connection(lambda: UpstreamConn(buffer_limit), host, port)
    return conn
