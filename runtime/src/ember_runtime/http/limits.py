"""What one HTTP server lets a client hold: bytes, time and connections.

Every limit here exists because a client could otherwise keep a server's
memory, descriptors or event loop to itself (see the runtime's hostile-client
tests). The defaults follow the servers users already know: header and body
timeouts in the range nginx uses, its 75 s keep-alive, and flow control on a
write buffer high-water mark as uvicorn has.
"""

from __future__ import annotations

import resource
from typing import Protocol


class HttpLimits:
    """Read-only after construction. A plain class: ``dataclasses`` costs
    milliseconds of import on the runtime's boot path."""

    __slots__ = (
        "body_timeout",
        "header_timeout",
        "idle_timeout",
        "max_body_bytes",
        "max_connections",
        "max_header_bytes",
        "max_pipelined",
        "stream_threshold",
        "write_buffer_bytes",
    )

    def __init__(
        self,
        *,
        max_header_bytes: int = 16 * 1024,
        max_body_bytes: int = 6 * 1024 * 1024,
        header_timeout: float = 10.0,
        body_timeout: float = 60.0,
        idle_timeout: float = 75.0,
        max_connections: int = 1000,
        max_pipelined: int = 16,
        write_buffer_bytes: int = 256 * 1024,
        stream_threshold: int = 0,
    ) -> None:
        #: Request line plus headers (and chunked trailers); 431 above.
        self.max_header_bytes = max_header_bytes
        #: Request body; 413 above, answered before the body is read.
        self.max_body_bytes = max_body_bytes
        #: From a request's first byte until its head is complete; 408 after.
        self.header_timeout = header_timeout
        #: From the end of the head until the body is complete, and for a
        #: client to take an answer it stopped reading; 408 (or a close) after.
        self.body_timeout = body_timeout
        #: An idle keep-alive connection is closed after this.
        self.idle_timeout = idle_timeout
        #: Open connections at most; a new one past it gets 503 and a close.
        self.max_connections = max_connections
        #: Complete requests read ahead of the one being answered.
        self.max_pipelined = max_pipelined
        #: Unsent answer bytes before a connection stops reading and answering.
        self.write_buffer_bytes = write_buffer_bytes
        #: A request body that is chunked or longer than this is handed out
        #: while it arrives (``streaming.StreamedBody``); 0: bodies are whole.
        self.stream_threshold = stream_threshold

    @classmethod
    def from_settings(
        cls, settings: HttpSettings, *, connection_budget: int, stream_threshold: int = 0
    ) -> HttpLimits:
        """The limits a server's settings ask for (the runtime and the
        gateway name them alike), the connection cap kept within
        ``connection_budget`` (see ``connection_budget``)."""
        return cls(
            max_header_bytes=settings.max_header_bytes,
            max_body_bytes=settings.max_body_bytes,
            header_timeout=settings.header_timeout_seconds,
            body_timeout=settings.body_timeout_seconds,
            idle_timeout=settings.idle_timeout_seconds,
            max_connections=max(1, min(settings.max_connections, connection_budget)),
            max_pipelined=settings.max_pipelined,
            write_buffer_bytes=settings.write_buffer_bytes,
            stream_threshold=stream_threshold,
        )

    @property
    def tick(self) -> float:
        """How often timeouts are checked: a fraction of the shortest one."""
        return max(0.05, min(1.0, self.header_timeout / 4, self.idle_timeout / 4))


class Clock:
    """A coarse loop clock, advanced by the timeout sweep.

    Connections stamp each state change with ``now`` instead of asking the
    loop for the time: the hot path pays an attribute read, and timeouts,
    which are seconds long, are late by at most one ``tick``.
    """

    __slots__ = ("now",)

    def __init__(self, now: float = 0.0) -> None:
        self.now = now


class HttpSettings(Protocol):
    """The settings both servers read their limits from, by the same names."""

    @property
    def max_header_bytes(self) -> int: ...
    @property
    def max_body_bytes(self) -> int: ...
    @property
    def header_timeout_seconds(self) -> float: ...
    @property
    def body_timeout_seconds(self) -> float: ...
    @property
    def idle_timeout_seconds(self) -> float: ...
    @property
    def max_connections(self) -> int: ...
    @property
    def max_pipelined(self) -> int: ...
    @property
    def write_buffer_bytes(self) -> int: ...


def connection_budget(reserved: int, share: float = 1.0) -> int:
    """Client connections this process can hold without running out of
    descriptors for what else it needs (``reserved`` of them, then ``share``
    of the rest): accepting a client must never starve the runtime of the
    pipes that replace a worker, nor the gateway of the connection a call
    goes out on. The soft limit is first raised to the hard one, which
    needs no privilege."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return int((soft - reserved) * share)
