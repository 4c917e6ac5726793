"""Every open connection of one server: the cap on how many, the timeout
sweep over them, and closing them when the server drains.

One timer for all connections, not one per connection or per request: the
hot path only stamps a phase and the coarse clock (see ``limits.Clock``),
and this sweep, every ``tick``, ends whatever overstayed. A server holds a
few thousand connections at most, so a pass is cheap.
"""

from __future__ import annotations

import asyncio

from ember_runtime.errors import UNAVAILABLE
from ember_runtime.http.limits import Clock, HttpLimits
from ember_runtime.http.protocol import HttpConn
from ember_runtime.http.reply import error_body, http_head


class Connections:
    def __init__(self, limits: HttpLimits) -> None:
        self.limits = limits
        self.loop = asyncio.get_running_loop()
        self.clock = Clock(self.loop.time())
        self.open: set[HttpConn] = set()
        self.draining = False  # answers say "connection: close" once set
        self.refused = 0
        body = error_body(
            UNAVAILABLE.code, f"more than {limits.max_connections} open connections", ""
        )
        self.refusal = (
            http_head(503, [("content-type", "application/json"), ("retry-after", "1")], len(body))
            + b"connection: close\r\n\r\n"
            + body
        )
        self._timer: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        return len(self.open)

    def admit(self, conn: HttpConn) -> bool:
        if len(self.open) >= self.limits.max_connections:
            self.refused += 1
            return False
        self.open.add(conn)
        return True

    def discard(self, conn: HttpConn) -> None:
        self.open.discard(conn)

    def start(self) -> None:
        """Begin sweeping for timeouts every ``limits.tick`` seconds."""
        self._sweep()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _sweep(self) -> None:
        now = self.clock.now = self.loop.time()
        for conn in list(self.open):
            conn.timed_out(now)
        self._timer = self.loop.call_later(self.limits.tick, self._sweep)

    def close_idle(self) -> None:
        """Close every connection with nothing left to answer (draining)."""
        self.draining = True
        for conn in list(self.open):
            conn.close_when_idle()
