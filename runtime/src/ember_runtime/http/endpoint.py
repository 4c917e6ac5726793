"""The two sides a connection talks to: the ``Endpoint`` that answers its
requests (the runtime's app, the gateway) and the ``Registry`` of open
connections that limits and times them out.

Protocols rather than base classes, so the core imports nothing above it.
"""

from __future__ import annotations

import itertools
import os
from typing import Any, Protocol

from ember_runtime.http.limits import Clock, HttpLimits

Headers = list[tuple[bytes, bytes]]

_ID_PREFIX = os.urandom(8).hex()
_ids = itertools.count(1)


def new_request_id() -> str:
    # A random per-process prefix and a counter: unique, and no syscall per call.
    return f"{_ID_PREFIX}{next(_ids):016x}"


class Endpoint(Protocol):
    """What serves the requests; it answers each with ``conn.send`` exactly once."""

    def handle(
        self,
        conn: Any,
        method: bytes,
        path: bytes,
        query: bytes,
        headers: Headers,
        body: bytes,
        request_id: str,
    ) -> None: ...

    def rejected(self, status: int, code: str) -> None:
        """A request refused by the core itself (for metrics)."""


class Registry(Protocol):
    """The set a connection belongs to (``connections.Connections``)."""

    limits: HttpLimits
    clock: Clock
    draining: bool
    refusal: bytes

    def admit(self, conn: Any) -> bool: ...

    def discard(self, conn: Any) -> None: ...
