"""Retry decisions and backoff math, without Redis."""

from __future__ import annotations

import pytest

from ember_operator.dispatch.invoke import Answer, classify
from ember_operator.dispatch.policy import (
    JITTER,
    Action,
    Outcome,
    RetryPolicy,
    Throttle,
    backoff,
    decide,
)

pytestmark = pytest.mark.unit

POLICY = RetryPolicy(max_retries=3, initial_seconds=1.0, max_seconds=5.0)


@pytest.mark.parametrize(("retry", "nominal"), [(1, 1.0), (2, 2.0), (3, 4.0), (4, 5.0), (9, 5.0)])
def test_backoff_doubles_up_to_the_cap_and_jitter_only_shortens_it(
    retry: int, nominal: float
) -> None:
    assert backoff(retry, POLICY, rand=0.0) == nominal
    assert backoff(retry, POLICY, rand=1.0) == pytest.approx(nominal * (1 - JITTER))
    for _ in range(200):
        assert nominal * (1 - JITTER) <= backoff(retry, POLICY) <= nominal


def test_random_jitter_spreads_a_burst() -> None:
    delays = {round(backoff(1, POLICY), 6) for _ in range(50)}
    assert len(delays) > 40


@pytest.mark.parametrize("status", [200, 201, 204, 302])
def test_answers_below_400_succeed(status: int) -> None:
    assert decide(Outcome(status), 1, POLICY).action is Action.SUCCEED


@pytest.mark.parametrize(
    "outcome",
    [
        Outcome(500),
        Outcome(502),
        Outcome(504),
        Outcome(408),
        Outcome(None, "timed out"),
        Outcome(503),
    ],
)
def test_server_errors_timeouts_and_lost_connections_are_retried(outcome: Outcome) -> None:
    first = decide(outcome, 1, POLICY)
    assert first.action is Action.RETRY
    assert 0.9 <= first.delay <= 1.0
    assert decide(outcome, 3, POLICY).action is Action.RETRY
    last = decide(outcome, 4, POLICY)  # max_retries + 1 attempts made
    assert last.action is Action.DEAD_LETTER and "after 4 attempts" in last.reason


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 413, 422])
def test_other_4xx_are_dead_lettered_at_once(status: int) -> None:
    d = decide(Outcome(status, "Runtime.BadRequest"), 1, POLICY)
    assert d.action is Action.DEAD_LETTER
    assert d.reason == f"HTTP {status}: Runtime.BadRequest (not retried)"


def test_429_and_a_full_gateway_queue_are_back_pressure_even_on_the_last_attempt() -> None:
    for outcome in (Outcome(429), Outcome(503, "Gateway.Overloaded", overloaded=True)):
        assert decide(outcome, 4, POLICY).action is Action.BACK_OFF
    assert decide(Outcome(503, "Gateway.Unavailable"), 1, POLICY).action is Action.RETRY


def test_max_retries_zero_means_one_attempt() -> None:
    d = decide(Outcome(500), 1, RetryPolicy(max_retries=0))
    assert d.action is Action.DEAD_LETTER


def test_gateway_answers_are_classified_by_their_fault_code() -> None:
    def answer(status: int, body: bytes) -> Outcome:
        return classify(Answer(status, [], body))

    assert answer(503, b'{"error":"Gateway.Overloaded","message":"x"}').overloaded
    assert not answer(503, b'{"error":"Gateway.Unavailable"}').overloaded
    # The gateway does not route the Function (yet): retried, not a bad request.
    unknown = answer(404, b'{"error":"Gateway.NotFound"}')
    assert decide(unknown, 1, POLICY).action is Action.RETRY
    # The function's own 404 is its answer.
    assert decide(answer(404, b"nope"), 1, POLICY).action is Action.DEAD_LETTER
    assert answer(500, b"x" * 500).error == "x" * 200


def test_throttle_halves_on_pressure_and_recovers_one_by_one() -> None:
    t = Throttle(10)
    pauses = [t.pressure() for _ in range(4)]
    assert t.allowed == 1
    assert pauses == [0.1, 0.2, 0.4, 0.8]
    for _ in range(3):
        t.relieved()
    assert t.allowed == 4 and t.pause == 0.0 and t.pressured == 0
    for _ in range(20):
        t.relieved()
    assert t.allowed == 10
    assert max(Throttle(1).pressure() for _ in range(30)) <= 5.0


def test_a_line_break_in_a_header_value_never_starts_a_header() -> None:
    """A queue message's idempotency key is the user's data, sent as a
    header: CR and LF in it become spaces."""
    from ember_operator.dispatch.http1 import Http1Pool

    pool = Http1Pool("gateway", 8080, max_body=10)
    sent = pool.request("/fn/a/b", {"idempotency-key": "k\r\nx-ember-attempt: 9\rz"}, b"{}")
    head, body = sent.split(b"\r\n\r\n", 1)
    assert body == b"{}"
    assert head.split(b"\r\n") == [
        b"POST /fn/a/b HTTP/1.1",
        b"host: gateway:8080",
        b"idempotency-key: k  x-ember-attempt: 9 z",
        b"content-length: 2",
    ]
    plain = pool.request("/fn/a/b", {"x-a": "1"}, b"")
    expected = b"POST /fn/a/b HTTP/1.1\r\nhost: gateway:8080\r\nx-a: 1\r\n"
    assert plain == expected + b"content-length: 0\r\n\r\n"
