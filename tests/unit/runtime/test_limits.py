"""Admission: the limiter and its queue."""

from __future__ import annotations

import asyncio

import pytest

from ember_runtime.limits import Limiter

pytestmark = pytest.mark.unit


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
