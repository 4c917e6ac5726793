"""A request body the HTTP core streams (chunked, or above its threshold),
gathered whole for the async API, which stores it: bounded by the async
body limit, so a large upload is refused with 413 as it arrives instead
of being held.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ember_runtime.errors import CallFault


class Gather:
    """Collects a streamed request body, bounded (a ``BodySink``)."""

    def __init__(
        self,
        body: Any,
        limit: int,
        done: Callable[[bytes], None],
        too_large: Callable[[], None],
        failed: Callable[[CallFault | None, str], None],
    ) -> None:
        self.body = body
        self.limit = limit
        self.chunks: list[bytes] = []
        self.size = 0
        self.over = False
        self.done, self.too_large, self.failed = done, too_large, failed

    def body_data(self, data: bytes) -> None:
        if self.over:
            return
        self.size += len(data)
        if self.size > self.limit:
            self.over = True
            self.chunks = []
            self.body.detach()
            self.too_large()
            return
        self.chunks.append(data)

    def body_end(self) -> None:
        if not self.over:
            self.done(b"".join(self.chunks))

    def body_failed(self, fault: CallFault | None, message: str) -> None:
        if not self.over:
            self.over = True
            self.failed(fault, message)
