"""A request body that is handed out while it is still arriving.

Why: a proxy (the gateway) must not hold a whole upload in memory before
it forwards it. A server whose limits set ``stream_threshold`` gets each
request whose body is chunked or longer than that as soon as its head is
complete, with a ``StreamedBody`` in place of the body bytes; the runtime
leaves the threshold at 0 and always gets whole bodies (its handlers need
them decoded, and its hot path stays as it was).

The consumer ``attach``es a ``BodySink`` and gets the chunks in order, then
``body_end`` or ``body_failed``. Memory stays bounded both ways: chunks
that arrive before a sink is attached are kept only up to the connection's
``write_buffer_bytes`` (then reading pauses), and a sink that cannot pass
data on (its own peer is slow) ``pause``s reading from the client until it
``resume``s.
"""

from __future__ import annotations

from typing import Any, Protocol

from ember_runtime.errors import CallFault


class BodySink(Protocol):
    def body_data(self, data: bytes) -> None: ...

    def body_end(self) -> None: ...

    def body_failed(self, fault: CallFault | None, message: str) -> None:
        """The body will not be complete: ``fault`` is what the client
        should be told (413, 408), None when the client went away."""


class StreamedBody:
    __slots__ = (
        "buffered",
        "chunks",
        "conn",
        "done",
        "dropped",
        "error",
        "length",
        "paused",
        "sink",
        "size",
    )

    def __init__(self, conn: Any, length: int) -> None:
        self.conn = conn
        self.length = length  # the declared content-length, -1 when chunked
        self.chunks: list[bytes] = []
        self.buffered = 0
        self.size = 0
        self.done = False
        self.error: tuple[CallFault | None, str] | None = None
        self.sink: BodySink | None = None
        self.paused = False
        self.dropped = False

    def __len__(self) -> int:
        # Counts nothing towards a connection's pipelined bytes: what it
        # holds itself is bounded, and pauses reading (``feed``).
        return 0

    @property
    def chunked(self) -> bool:
        return self.length < 0

    @property
    def finished(self) -> bool:
        """Nothing more will arrive (complete or failed)."""
        return self.done or self.error is not None

    # --- the connection's side ---------------------------------------------

    def feed(self, data: bytes) -> None:
        self.size += len(data)
        if self.dropped:
            return
        sink = self.sink
        if sink is not None:
            sink.body_data(data)
            return
        self.chunks.append(data)
        self.buffered += len(data)
        if self.buffered >= self.conn.limits.write_buffer_bytes:
            self.pause()

    def finish(self) -> None:
        self.done = True
        if self.sink is not None:
            self.sink.body_end()

    def fail(self, fault: CallFault | None, message: str) -> None:
        if self.finished:
            return
        self.error = (fault, message)
        if self.sink is not None:
            self.sink.body_failed(fault, message)

    # --- the consumer's side -----------------------------------------------

    def attach(self, sink: BodySink) -> None:
        """Deliver what came so far, then the rest as it comes."""
        self.sink = sink
        chunks, self.chunks, self.buffered = self.chunks, [], 0
        for chunk in chunks:
            sink.body_data(chunk)
        if self.done:
            sink.body_end()
        elif self.error is not None:
            sink.body_failed(*self.error)
        else:
            self.resume()

    def detach(self) -> None:
        """The consumer is done (it answered early): drop the rest."""
        self.sink = None
        self.dropped = True
        self.chunks, self.buffered = [], 0
        self.resume()

    def pause(self) -> None:
        if not self.paused:
            self.paused = True
            self.conn._pause_reading()

    def resume(self) -> None:
        if self.paused:
            self.paused = False
            self.conn._resume_reading()
