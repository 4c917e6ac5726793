"""A streamed request body on its way to a pod (``http.streaming``).

The body is passed on as it arrives, never held whole. Until a pod's
connection takes the request (the call may be held while its Function
wakes), at most ``limit`` bytes wait here and the caller's connection stops
being read. The first ``limit`` bytes are also kept after they are sent,
so a request a pod refused before reading it can still go to another pod;
once more than that has gone out, it cannot (``replayable`` turns False),
and such a failure is a 502 rather than a second, partial run.
"""

from __future__ import annotations

from typing import Protocol

from ember_operator.gateway.upstream import UpstreamConn
from ember_runtime.errors import CallFault
from ember_runtime.http.streaming import StreamedBody

LAST_CHUNK = b"0\r\n\r\n"


class Failing(Protocol):
    def body_failed(self, fault: CallFault | None, message: str) -> None: ...


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


class BodyRelay:
    __slots__ = ("call", "chunks", "done", "kept", "limit", "stream", "upstream", "upstream_paused")

    def __init__(self, call: Failing, stream: StreamedBody, limit: int) -> None:
        self.call = call
        self.stream = stream
        self.limit = limit
        self.chunks: list[bytes] | None = []  # what went (or goes) first, for a retry
        self.kept = 0
        self.done = False
        self.upstream: UpstreamConn | None = None
        self.upstream_paused = False
        stream.attach(self)

    @property
    def replayable(self) -> bool:
        return self.chunks is not None

    # --- http.streaming.BodySink ---------------------------------------------

    def body_data(self, data: bytes) -> None:
        chunks = self.chunks
        if chunks is not None:
            chunks.append(data)
            self.kept += len(data)
        up = self.upstream
        if up is not None:
            up.write(chunk(data) if self.stream.chunked else data)
            if chunks is not None and self.kept > self.limit:
                self.chunks = None  # too much to send again
        elif self.kept > self.limit:
            self.stream.pause()  # nowhere to send it yet

    def body_end(self) -> None:
        self.done = True
        up = self.upstream
        if up is not None:
            if self.stream.chunked:
                up.write(LAST_CHUNK)
            up.end_request()

    def body_failed(self, fault: CallFault | None, message: str) -> None:
        self.call.body_failed(fault, message)

    # --- the call's side -------------------------------------------------------

    def opening(self) -> bytes:
        """What follows the head when a connection takes the request."""
        chunks = self.chunks or []
        if self.stream.chunked:
            data = b"".join(chunk(c) for c in chunks)
            return data + LAST_CHUNK if self.done else data
        return b"".join(chunks)

    def connected(self, up: UpstreamConn) -> None:
        """``up`` was sent the head and ``opening()``; the rest goes straight on."""
        self.upstream = up
        if self.kept > self.limit:
            self.chunks = None
        if not self.upstream_paused:
            self.stream.resume()

    def disconnected(self) -> None:
        self.upstream = None
        self.upstream_paused = False

    def paused(self, paused: bool) -> None:
        """The pod's connection stopped taking bytes (or takes them again)."""
        self.upstream_paused = paused
        if paused:
            self.stream.pause()
        elif self.upstream is not None:
            self.stream.resume()

    def drop(self) -> None:
        """The call ended: whatever else arrives is not wanted."""
        self.upstream = None
        self.stream.detach()
