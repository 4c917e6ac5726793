"""The refusing half of a connection: the answers the core gives itself
(400, 408, 413, 431) and the timeout rules the sweep applies.

Split from ``protocol`` (which parses) so each reads on its own; the state
is ``HttpConn``'s, these are its methods.
"""

from __future__ import annotations

from ember_runtime.errors import HEADERS_TOO_LARGE, PAYLOAD_TOO_LARGE, REQUEST_TIMEOUT, CallFault
from ember_runtime.http.answering import Answering
from ember_runtime.http.endpoint import new_request_id
from ember_runtime.http.limits import HttpLimits
from ember_runtime.http.reply import fault_reply

# What a connection is waiting for, for the timeout sweep.
IDLE, HEAD, BODY = 0, 1, 2


class _Reject(Exception):
    """Raised from a parser callback; ``HttpConn.reject`` says how to answer."""


class _Discard(Exception):
    """Raised from a parser callback: a streamed body failed (its endpoint
    answers), nothing more is parsed."""


class Refusing(Answering):
    """The base of ``HttpConn``, above ``Answering``."""

    __slots__ = ("request_id",)

    limits: HttpLimits
    request_id: str
    phase: int
    since: float

    def _rid(self) -> str:
        if not self.request_id:
            self.request_id = new_request_id()
        return self.request_id

    def _refuse(self, fault: CallFault, message: str) -> None:
        self.reject = fault_reply(fault, message, self._rid())
        raise _Reject

    def _too_large_head(self) -> None:
        self._refuse(
            HEADERS_TOO_LARGE,
            f"request line and headers exceed {self.limits.max_header_bytes} bytes",
        )

    def _too_large_body(self) -> None:
        self._refuse(PAYLOAD_TOO_LARGE, f"request body exceeds {self.limits.max_body_bytes} bytes")

    def timed_out(self, now: float) -> None:
        """Called by the sweep: end a connection that held its state too long."""
        limits = self.limits
        if self.write_paused:
            if now - self.since > limits.body_timeout and self.transport is not None:
                self.transport.abort()  # it will not read the answer it has
            return
        phase = self.phase
        if phase == IDLE:
            if not self.busy and not self.pipeline and now - self.since > limits.idle_timeout:
                self._close()
            return
        limit = limits.header_timeout if phase == HEAD else limits.body_timeout
        if now - self.since <= limit or self.discarding:
            return
        stream = self.stream
        if stream is not None:
            if not stream.paused:  # paused: our own peer is slow, not the client
                stream.fail(REQUEST_TIMEOUT, f"the request body stalled for {limit:g}s")
                self.discarding = True
            return
        what = "request head" if phase == HEAD else "request body"
        self.reject = fault_reply(
            REQUEST_TIMEOUT, f"the {what} did not arrive within {limit:g}s", self._rid()
        )
        self.discarding = True
        self._pause_reading()
        self._pump()
