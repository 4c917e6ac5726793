"""The function contract's public side: what a handler receives (``Context``)
and may return (``Response``), and how its failures are shown to it.

Handlers import ``Response`` and ``Context`` from ``ember_runtime``. How
events and results become bytes lives in ``codec``, how ``module:function``
is found in ``loader``; this module stays small because it is on the boot
path before the zygote forks.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from typing import Any

from ember_runtime.logs import FunctionLogger
from ember_runtime.tracing import is_traceparent

Handler = Callable[[Any, "Context"], Any]
Headers = list[tuple[str, str]]

_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")


class Response:
    """Full control over the answer: ``Response(body, status=201, headers={...})``."""

    __slots__ = ("body", "headers", "status")

    def __init__(
        self, body: Any = b"", status: int = 200, headers: Mapping[str, str] | None = None
    ) -> None:
        self.body = body
        self.status = status
        self.headers = dict(headers or {})

    def __repr__(self) -> str:
        return f"Response(status={self.status}, headers={self.headers!r})"


class Context:
    """What a handler knows about its call besides the event."""

    __slots__ = (
        "_logger",
        "deadline",
        "function",
        "headers",
        "method",
        "path",
        "query",
        "request_id",
        "traceparent",
    )

    def __init__(
        self,
        request_id: str,
        function: str,
        deadline: float,
        method: str = "POST",
        path: str = "/",
        headers: dict[str, str] | None = None,
        query: dict[str, str] | None = None,
        traceparent: str | None = None,
    ) -> None:
        self.request_id = request_id
        self.function = function
        #: Wall-clock time (``time.time()``) at which the runtime answers 504.
        self.deadline = deadline
        self.method = method
        self.path = path
        #: Request headers, names lower-cased.
        self.headers = headers if headers is not None else {}
        #: Query parameters; the last value wins when a name repeats.
        self.query = query if query is not None else {}
        #: The inbound W3C ``traceparent``, when it was well-formed.
        self.traceparent = traceparent
        self._logger: FunctionLogger | None = None

    @property
    def logger(self) -> FunctionLogger:
        """JSON-line logger tagged with this call's request id and trace id."""
        if self._logger is None:
            self._logger = FunctionLogger(
                request_id=self.request_id, function=self.function, trace_id=self.trace_id
            )
        return self._logger

    def remaining_ms(self) -> int:
        """Milliseconds left before the deadline (never negative)."""
        return max(0, int((self.deadline - time.time()) * 1000))

    @property
    def trace_id(self) -> str | None:
        return trace_id_of(self.traceparent)

    def __repr__(self) -> str:
        return (
            f"Context(request_id={self.request_id!r}, function={self.function!r}, "
            f"method={self.method!r}, path={self.path!r})"
        )


def trace_id_of(traceparent: str | None) -> str | None:
    if not traceparent:
        return None
    m = _TRACEPARENT.match(traceparent)
    return m.group(1) if m else None


def valid_traceparent(value: str | None) -> str | None:
    """Return ``value`` when it is a well-formed W3C traceparent (the
    gateway's rule, ``tracing.is_traceparent``), else None."""
    if value is None:
        return None
    value = value.strip()
    return value if is_traceparent(value.encode("latin-1", "replace")) else None


def parse_query(query_string: str) -> dict[str, str]:
    from urllib.parse import parse_qsl

    return dict(parse_qsl(query_string, keep_blank_values=True))
