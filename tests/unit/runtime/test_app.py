"""The app on top of the HTTP core: the order in which a call finishes."""

from __future__ import annotations

import pytest

from ember_runtime.limits import Limiter
from ember_runtime.metrics import Metrics

pytestmark = pytest.mark.unit


def test_a_freed_slot_goes_to_the_queue_before_the_answer_is_written() -> None:
    """``App.finish`` hands the worker its next call first, so the worker
    computes while the server writes to the client."""
    from typing import Any

    from ember_runtime.app import App

    events: list[str] = []

    class Conn:
        def send(self, reply: Any) -> None:
            events.append(f"send {reply[0]}")

    class Job:
        def __init__(self, name: str) -> None:
            self.name, self.conn, self.started, self.request_id = name, Conn(), 0.0, name
            self.deadline = 1e18
            self.finished = False

    app = App.__new__(App)
    app.limiter = Limiter(concurrency=1, queue_depth=1)
    app.metrics = Metrics("f", started_at=0.0)
    assert app.limiter.try_enter()
    nxt = Job("next")
    assert app.limiter.enqueue(nxt)  # type: ignore[arg-type]
    app._start = lambda job: events.append(f"start {job.name}")  # type: ignore[method-assign]
    reply = (200, "", b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n", b"")
    app.finish(Job("first"), reply, None)  # type: ignore[arg-type]
    assert events == ["start next", "send 200"]
    assert app.metrics.by_status == {200: 1} and app.limiter.inflight == 1
