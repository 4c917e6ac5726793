"""Settings, admission and metrics text, without a server."""

from __future__ import annotations

import asyncio

import pytest

from ember_runtime.config import parse_settings
from ember_runtime.errors import LoadError, LoadFault
from ember_runtime.http.reply import http_head
from ember_runtime.invoke import invoke_sync
from ember_runtime.limits import Limiter
from ember_runtime.metrics import Metrics
from ember_runtime.wire import frame, loads

pytestmark = pytest.mark.unit


def test_flags_win_over_env() -> None:
    env = {"EMBER_TARGET": "main:handle", "EMBER_PORT": "9000", "EMBER_CONCURRENCY": "7"}
    s = parse_settings(["--port", "8081"], env)
    assert (s.target, s.port, s.concurrency) == ("main:handle", 8081, 7)
    assert s.queue_depth == 7  # defaults to the concurrency
    assert s.function == "main"
    assert s.metrics is True
    assert s.pool_size == 8


def test_every_setting_has_an_env_var() -> None:
    env = {
        "EMBER_TARGET": "m:f",
        "EMBER_SOURCE": "/x/m.py",
        "EMBER_PORT": "1",
        "EMBER_TIMEOUT_SECONDS": "2.5",
        "EMBER_CONCURRENCY": "3",
        "EMBER_QUEUE_DEPTH": "0",
        "EMBER_MAX_BODY_BYTES": "10",
        "EMBER_MAX_HEADER_BYTES": "300",
        "EMBER_FUNCTION": "ns/f",
        "EMBER_METRICS": "off",
        "EMBER_SPARE_WORKERS": "2",
        "EMBER_HOST": "127.0.0.1",
    }
    s = parse_settings([], env)
    assert (s.source, s.timeout_seconds, s.queue_depth, s.max_body_bytes) == ("/x/m.py", 2.5, 0, 10)
    assert (s.function, s.metrics, s.spare_workers, s.host) == ("ns/f", False, 2, "127.0.0.1")


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"EMBER_TARGET": "m:f", "EMBER_CONCURRENCY": "0"},
        {"EMBER_TARGET": "m:f", "EMBER_TIMEOUT_SECONDS": "soon"},
        {"EMBER_TARGET": "m:f", "EMBER_METRICS": "maybe"},
    ],
)
def test_bad_settings_are_a_config_fault(env: dict[str, str]) -> None:
    with pytest.raises(LoadError) as exc:
        parse_settings([], env)
    assert exc.value.fault is LoadFault.INVALID_CONFIG
    assert exc.value.fault.exit_status == 2


class _Waiter:
    def __init__(self, deadline: float) -> None:
        self.deadline = deadline


async def test_limiter_admits_queues_and_refuses() -> None:
    lim: Limiter[_Waiter] = Limiter(concurrency=1, queue_depth=1)
    assert lim.try_enter()
    assert not lim.try_enter()
    first = _Waiter(1.0)
    assert lim.enqueue(first)
    assert not lim.enqueue(_Waiter(2.0))  # queue full: the caller answers 429
    assert lim.queued == 1 and lim.saturated
    assert lim.leave() is first  # the slot goes straight to the oldest waiter
    assert (lim.inflight, lim.queued) == (1, 0)
    assert lim.leave() is None
    assert lim.inflight == 0 and not lim.saturated
    await asyncio.wait_for(lim.wait_idle(), 1)


def test_limiter_expires_only_overdue_waiters() -> None:
    lim: Limiter[_Waiter] = Limiter(concurrency=1, queue_depth=4)
    assert lim.try_enter()
    waiters = [_Waiter(d) for d in (1.0, 2.0, 3.0)]
    for w in waiters:
        assert lim.enqueue(w)
    assert list(lim.expired(2.0)) == waiters[:2]
    assert lim.queued == 1 and lim.inflight == 1
    assert lim.leave() is waiters[2]


def test_prometheus_text() -> None:
    sig = Metrics("ns/fn", started_at=0.0)
    sig.first_call()
    sig.observe(200, "", 0.003)
    sig.observe(500, "Runtime.HandlerError", 0.2)
    text = sig.prometheus(inflight=2, queued=1, restarts=3).decode()
    assert 'ember_invocations_total{function="ns/fn",code="200"} 1' in text
    assert 'ember_invocation_errors_total{function="ns/fn",error="Runtime.HandlerError"} 1' in text
    assert 'ember_invocation_duration_seconds_bucket{function="ns/fn",le="0.005"} 1' in text
    assert 'ember_invocation_duration_seconds_bucket{function="ns/fn",le="+Inf"} 2' in text
    assert 'ember_invocation_duration_seconds_count{function="ns/fn"} 2' in text
    assert 'ember_inflight_invocations{function="ns/fn"} 2' in text
    assert 'ember_queued_invocations{function="ns/fn"} 1' in text
    assert 'ember_worker_restarts_total{function="ns/fn"} 3' in text
    assert "ember_cold_start_seconds" in text
    for line in text.splitlines():
        assert line.startswith("#") or line.rsplit(" ", 1)[1].replace(".", "").isdigit()


def test_metrics_off_keeps_only_the_request_count() -> None:
    sig = Metrics("f", enabled=False, started_at=0.0)
    sig.observe(500, "Runtime.HandlerError", 0.1)
    assert sig.requests_total == 1 and sig.errors == {} and sum(sig.bucket_counts) == 0


def test_frames_round_trip_and_heads_are_http() -> None:
    req = ("r", "GET", b"/", b"a=1", [(b"h", b"v")], b"body", 1.5)
    data = frame(req)
    assert loads(data[4:]) == req
    head = http_head(201, [("content-type", "text/plain")], 5)
    assert head == b"HTTP/1.1 201 Created\r\ncontent-type: text/plain\r\ncontent-length: 5\r\n"
    # 204 and 304 never carry a body, so never a content-length either.
    assert http_head(204, [], 0) == b"HTTP/1.1 204 No Content\r\n"
    assert http_head(304, [], 0) == b"HTTP/1.1 304 Not Modified\r\n"


def test_invoke_sync_maps_errors() -> None:
    def boom(event: object, ctx: object) -> object:
        raise ValueError("no")

    req = ("rid", "POST", b"/", b"", [(b"content-type", b"application/json")], b"{}", 0.0)
    status, code, head, body = invoke_sync(boom, "f", req)
    assert (status, code) == (500, "Runtime.HandlerError")
    assert b"x-request-id: rid" in head and b'"message":"ValueError: no"' in body
    bad = ("rid", "POST", b"/", b"", [(b"content-type", b"application/json")], b"{", 0.0)
    assert invoke_sync(boom, "f", bad)[:2] == (400, "Runtime.MalformedJSON")


def test_heads_use_cached_lines_and_carry_the_request_id() -> None:
    for ctype in ("application/json", "text/plain; charset=utf-8", "application/octet-stream"):
        head = http_head(200, [("content-type", ctype)], 2, "rid-1")
        assert head == (
            b"HTTP/1.1 200 OK\r\ncontent-type: "
            + ctype.encode()
            + b"\r\nx-request-id: rid-1\r\ncontent-length: 2\r\n"
        )
    # Uncached names and values are encoded as before, in order.
    head = http_head(200, [("x-a", "\u00e9"), ("x-b", "\u2603")], 0)
    assert head == b"HTTP/1.1 200 OK\r\nx-a: \xe9\r\nx-b: ?\r\ncontent-length: 0\r\n"


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


def test_frame_end_finds_whole_frames_only() -> None:
    from ember_runtime.wire import HEADER_LEN, frame, frame_end

    one, two = frame(("a", 1)), frame({"b": b"x" * 100})
    assert frame_end(one) == len(one)  # exactly one frame: take it as it is
    assert frame_end(one + two) == len(one)
    assert frame_end(one[:-1]) == 0 and frame_end(one[: HEADER_LEN - 1]) == 0
    assert frame_end(bytearray(one + two[:5])) == len(one)
    assert frame_end(b"") == 0
