"""What to do after an attempt: pure decisions, tested without Redis.

* A 2xx/3xx answer is a success.
* 5xx, 408 and timeouts or connection errors are worth another try: after
  an exponential backoff, until ``max_retries`` retries are used up; then
  the message is dead-lettered with its last error.
* Any other 4xx means the request itself is wrong: trying again would get
  the same answer, so it is dead-lettered at once.
* 429 (the function says "too busy"), and the gateway's own 503
  ``Gateway.Overloaded`` (its held queue for the function is full), are
  back-pressure, not failures: the message waits and is tried again
  without using up a retry, and the source slows down (``Throttle``).

Backoff: ``initial * 2**(n-1)`` for the n-th retry, capped at ``max``,
minus up to ``JITTER`` of itself at random, so that a burst of failures
does not come back as a burst of retries, and a retry never comes later
than the configured schedule says.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import Enum

JITTER = 0.1
# Back-pressure waits start here and double per 429 in a row, up to the cap.
PRESSURE_FIRST, PRESSURE_MAX = 0.1, 5.0


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 3
    initial_seconds: float = 1.0
    max_seconds: float = 60.0

    @property
    def max_attempts(self) -> int:
        return self.max_retries + 1


def backoff(retry: int, policy: RetryPolicy, rand: float | None = None) -> float:
    """Seconds before the ``retry``-th retry (1 = the first one)."""
    nominal = min(policy.max_seconds, policy.initial_seconds * 2 ** max(0, retry - 1))
    r = random.random() if rand is None else rand
    return float(nominal * (1.0 - JITTER * r))


class Action(Enum):
    SUCCEED = "succeed"
    RETRY = "retry"
    DEAD_LETTER = "dead-letter"
    BACK_OFF = "back-off"  # back-pressure: try again later, no retry used


@dataclass(frozen=True)
class Outcome:
    """What one attempt got: an HTTP status, or a failure before one."""

    status: int | None  # None: timeout or connection error
    error: str = ""  # the fault code or the exception, for the record
    overloaded: bool = False  # the gateway's 503 Gateway.Overloaded


@dataclass(frozen=True)
class Decision:
    action: Action
    delay: float = 0.0
    reason: str = ""


SUCCEEDED = Decision(Action.SUCCEED)


def decide(outcome: Outcome, attempt: int, policy: RetryPolicy) -> Decision:
    """``attempt`` is the one just made (1 = the first)."""
    status = outcome.status
    if status is not None and status < 400:
        return SUCCEEDED
    if status == 429 or (status == 503 and outcome.overloaded):
        return Decision(Action.BACK_OFF, reason=f"HTTP {status}: back-pressure")
    what = f"HTTP {status}" if status is not None else "no answer"
    reason = f"{what}: {outcome.error}" if outcome.error else what
    if status is not None and status < 500 and status != 408:
        return Decision(Action.DEAD_LETTER, reason=f"{reason} (not retried)")
    if attempt >= policy.max_attempts:
        return Decision(Action.DEAD_LETTER, reason=f"{reason} (after {attempt} attempts)")
    return Decision(Action.RETRY, backoff(attempt, policy), reason)


class Throttle:
    """A source's concurrency under back-pressure: halved on each 429 (at
    least 1), one more per success (up to the configured bound), and a
    pause before the next read that doubles per 429 in a row."""

    def __init__(self, limit: int) -> None:
        self.limit = max(1, limit)
        self.allowed = self.limit
        self.pause = 0.0
        self.pressured = 0  # 429s in a row

    def pressure(self) -> float:
        self.allowed = max(1, self.allowed // 2)
        self.pressured += 1
        self.pause = min(PRESSURE_MAX, PRESSURE_FIRST * 2 ** (self.pressured - 1))
        return self.pause

    def relieved(self) -> None:
        self.pressured = 0
        self.pause = 0.0
        if self.allowed < self.limit:
            self.allowed += 1

    def resize(self, limit: int) -> None:
        self.limit = max(1, limit)
        self.allowed = min(self.allowed, self.limit)
