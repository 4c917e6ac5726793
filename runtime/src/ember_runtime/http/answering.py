"""The writing half of a connection: answers go out one at a time, in the
order the requests came, and never faster than the client reads them.

Split from ``protocol`` (the reading half, which owns the state) so each
reads on its own. ``_pump`` is a loop, never a recursion: an endpoint may
answer synchronously (a control endpoint, a 429), which calls ``send`` and
so ``_pump`` again; that inner call returns at once and the outer loop goes
on, so a thousand pipelined answers cannot grow the stack.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from ember_runtime.http.endpoint import Endpoint, Registry
from ember_runtime.http.reply import Reply
from ember_runtime.http.streaming import StreamedBody

_CLOSE = b"connection: close\r\n"
_OPTIONS_ANY = b"HTTP/1.1 204 No Content\r\nallow: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS\r\n"


class Answering:
    """Mixed into ``HttpConn``; these slots are the state both halves share."""

    __slots__ = (
        "answering_stream",
        "busy",
        "conns",
        "discarding",
        "endpoint",
        "eof",
        "head_only",
        "http11",
        "keep_alive",
        "lingering",
        "local",
        "pipeline",
        "pipeline_bytes",
        "producer",
        "pumping",
        "read_paused",
        "reject",
        "stream",
        "transport",
        "write_paused",
    )

    transport: asyncio.Transport | None
    endpoint: Endpoint
    conns: Registry
    pipeline: deque[tuple[Any, ...]]
    pipeline_bytes: int
    busy: bool
    head_only: bool
    keep_alive: bool
    lingering: bool
    local: tuple[str, int] | None
    reject: Reply | None
    discarding: bool
    eof: bool
    read_paused: bool
    write_paused: bool
    pumping: bool
    stream: StreamedBody | None
    answering_stream: StreamedBody | None
    producer: Any
    http11: bool

    def _pause_reading(self) -> None:
        if not self.read_paused and self.transport is not None:
            self.read_paused = True
            self.transport.pause_reading()

    def _pump(self) -> None:
        """Hand out pipelined requests one at a time, in a loop.

        An endpoint may answer synchronously (a control endpoint, a 429),
        which calls ``send`` and so ``_pump`` again; that inner call returns
        at once and this loop goes on, so the stack never grows.
        """
        if self.pumping:
            return
        self.pumping = True
        try:
            while not self.busy and not self.write_paused:
                t = self.transport
                if t is None or t.is_closing():
                    self.pipeline.clear()  # nobody will read these answers
                    break
                if self.pipeline:
                    self._dispatch(self.pipeline.popleft())
                    continue
                if self.reject is not None:
                    self._send_reject()
                elif self.eof or self.discarding:
                    if not self.lingering:
                        self._close()
                elif self.read_paused and not (self.stream is not None and self.stream.paused):
                    self.read_paused = False
                    t.resume_reading()
                break
        finally:
            self.pumping = False

    def _resume_reading(self) -> None:
        """A streamed body's consumer can take more (see ``StreamedBody``)."""
        t = self.transport
        if self.read_paused and not self.write_paused and not self.pipeline and t is not None:
            self.read_paused = False
            t.resume_reading()

    def _dispatch(self, item: tuple[Any, ...]) -> None:
        method, url, headers, body, keep_alive, request_id, self.http11 = item
        self.pipeline_bytes -= len(body)
        self.busy = True
        self.keep_alive = keep_alive
        self.head_only = method == b"HEAD"
        if body.__class__ is StreamedBody:
            self.answering_stream = body
        if url == b"*":  # OPTIONS *: about the server, not a resource
            self.send((204, "", _OPTIONS_ANY, b""))
            return
        path, _, query = url.partition(b"?")
        self.endpoint.handle(self, method, path, query, headers, body, request_id)

    def send(self, reply: Reply) -> None:
        """Write the answer to the request being served, then serve the next."""
        t = self.transport
        if self.answering_stream is not None:
            self._early(reply[2], reply[3])
            return
        if t is not None and not t.is_closing():
            _status, _code, head, body = reply
            if self.head_only:
                body = b""
            if self.keep_alive and not self.conns.draining:
                t.write(head + b"\r\n" + body)
            else:
                t.write(head + _CLOSE + b"\r\n" + body)
                t.close()
        self.busy = False
        self._pump()

    # --- a streamed answer: head, body pieces, end ---------------------------

    def start_answer(self, head: bytes, close: bool = False) -> None:
        """Write a head (without its blank line); the body follows through
        ``write_body`` and ``end_answer``. ``close``: the body ends with the
        connection (no length, no chunked framing for HTTP/1.0)."""
        t = self.transport
        if t is None or t.is_closing():
            return
        stream = self.answering_stream
        if close or not self.keep_alive or self.conns.draining or (stream and not stream.done):
            self.keep_alive = False
            t.write(head + _CLOSE + b"\r\n")
        else:
            t.write(head + b"\r\n")

    def write_body(self, data: bytes) -> None:
        t = self.transport
        if t is not None and not self.head_only and not t.is_closing():
            t.write(data)

    def end_answer(self) -> None:
        self.producer = None
        t = self.transport
        stream = self.answering_stream
        if stream is not None:
            self.answering_stream = None
            if not stream.done:  # answered before the body ended: drop the rest
                stream.detach()
                self.discarding = True
                if t is not None and not t.is_closing():
                    self._linger(t)
        elif t is not None and not self.keep_alive and not t.is_closing():
            t.close()
        self.busy = False
        self._pump()

    def _early(self, head: bytes, body: bytes) -> None:
        """A whole answer to a request whose body was streamed: if the body
        is still arriving, it is dropped and the connection closes after."""
        stream = self.answering_stream
        self.start_answer(head)
        if body:
            self.write_body(body)
        if stream is not None and stream.done:
            self.answering_stream = None
        self.end_answer()

    def _send_reject(self) -> None:
        reply, self.reject = self.reject, None
        t = self.transport
        if reply is None or t is None or t.is_closing():
            return
        status, code, head, body = reply
        self.endpoint.rejected(status, code)
        t.write(head + _CLOSE + b"\r\n" + body)
        self._linger(t)

    def _linger(self, t: asyncio.Transport) -> None:
        """Half-close and keep reading (discarding) so the client reads the
        answer instead of a reset caused by unread request bytes."""
        self.lingering = True
        if t.can_write_eof():
            t.write_eof()
            if self.read_paused:
                self.read_paused = False
                t.resume_reading()
            asyncio.get_running_loop().call_later(5.0, t.abort)
        else:
            t.close()

    def local_address(self) -> tuple[str, int] | None:
        """The address the client connected to (host, port), asked of the
        socket once per connection."""
        if self.local is None:
            t = self.transport
            sockname = t.get_extra_info("sockname") if t is not None else None
            if sockname:
                self.local = (str(sockname[0]), int(sockname[1]))
        return self.local

    def _close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def close_when_idle(self) -> None:
        if not self.busy and not self.pipeline:
            self._close()
