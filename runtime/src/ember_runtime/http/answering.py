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

_CLOSE = b"connection: close\r\n"
_OPTIONS_ANY = b"HTTP/1.1 204 No Content\r\nallow: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS\r\n"


class Answering:
    """Mixed into ``HttpConn``; these slots are the state both halves share."""

    __slots__ = (
        "busy",
        "conns",
        "discarding",
        "endpoint",
        "eof",
        "head_only",
        "keep_alive",
        "pipeline",
        "pipeline_bytes",
        "pumping",
        "read_paused",
        "reject",
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
    reject: Reply | None
    discarding: bool
    eof: bool
    read_paused: bool
    write_paused: bool
    pumping: bool

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
                    self._close()
                elif self.read_paused:
                    self.read_paused = False
                    t.resume_reading()
                break
        finally:
            self.pumping = False

    def _dispatch(self, item: tuple[Any, ...]) -> None:
        method, url, headers, body, keep_alive, request_id = item
        self.pipeline_bytes -= len(body)
        self.busy = True
        self.keep_alive = keep_alive
        self.head_only = method == b"HEAD"
        if url == b"*":  # OPTIONS *: about the server, not a resource
            self.send((204, "", _OPTIONS_ANY, b""))
            return
        path, _, query = url.partition(b"?")
        self.endpoint.handle(self, method, path, query, headers, body, request_id)

    def send(self, reply: Reply) -> None:
        """Write the answer to the request being served, then serve the next."""
        t = self.transport
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

    def _send_reject(self) -> None:
        reply, self.reject = self.reject, None
        t = self.transport
        if reply is None or t is None or t.is_closing():
            return
        status, code, head, body = reply
        self.endpoint.rejected(status, code)
        t.write(head + _CLOSE + b"\r\n" + body)
        # Half-close and keep reading (discarding) so the client reads the
        # answer instead of a reset caused by unread request bytes.
        if t.can_write_eof():
            t.write_eof()
            if self.read_paused:
                self.read_paused = False
                t.resume_reading()
            asyncio.get_running_loop().call_later(5.0, t.abort)
        else:
            t.close()

    def _close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def close_when_idle(self) -> None:
        if not self.busy and not self.pipeline:
            self._close()
