"""Admission: at most ``concurrency`` calls in flight, a short FIFO queue
behind them, and a plain "no" (429) beyond that.

Pushing back early is what lets the gateway and autoscaler see load: a pod
that silently queues hundreds of requests looks healthy while every caller
times out. The queue holds plain objects and hands a freed slot straight to
the oldest one, with no future or task per waiter; the server's sweeper
expires waiters whose deadline has passed (see ``expired``).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterator
from typing import Generic, Protocol, TypeVar


class Waiter(Protocol):
    @property
    def deadline(self) -> float: ...


W = TypeVar("W", bound=Waiter)


class Limiter(Generic[W]):
    def __init__(self, concurrency: int, queue_depth: int) -> None:
        self.concurrency = concurrency
        self.queue_depth = queue_depth
        self.inflight = 0
        self._queue: deque[W] = deque()
        self._idle: asyncio.Event | None = None

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def saturated(self) -> bool:
        return self.inflight >= self.concurrency

    def try_enter(self) -> bool:
        """Take a slot now if one is free (and nobody is queued ahead)."""
        if self.inflight < self.concurrency and not self._queue:
            self.inflight += 1
            return True
        return False

    def enqueue(self, waiter: W) -> bool:
        """Queue for a slot; False when the queue is full (answer 429)."""
        if len(self._queue) >= self.queue_depth:
            return False
        self._queue.append(waiter)
        return True

    def leave(self) -> W | None:
        """Give a slot back. Returns the waiter that now holds it, if any."""
        if self._queue:
            return self._queue.popleft()
        self.inflight -= 1
        self._check_idle()
        return None

    def expired(self, now: float) -> Iterator[W]:
        """Remove and yield queued waiters whose deadline is ``<= now``.

        Every waiter gets the same timeout, so deadlines grow along the
        queue and only its head needs looking at.
        """
        q = self._queue
        while q and q[0].deadline <= now:
            yield q.popleft()
        self._check_idle()

    def _check_idle(self) -> None:
        if self._idle is not None and self.inflight == 0 and not self._queue:
            self._idle.set()

    async def wait_idle(self) -> None:
        """Return once nothing is in flight or queued."""
        if self.inflight == 0 and not self._queue:
            return
        self._idle = asyncio.Event()
        await self._idle.wait()
