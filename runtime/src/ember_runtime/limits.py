"""Admission: at most ``concurrency`` calls in flight, a short FIFO queue
behind them, and a plain "no" (429) beyond that.

Pushing back early is what lets the gateway and autoscaler see load: a pod
that silently queues hundreds of requests looks healthy while every caller
times out.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque


class Limiter:
    def __init__(self, concurrency: int, queue_depth: int) -> None:
        self.concurrency = concurrency
        self.queue_depth = queue_depth
        self.inflight = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._idle: asyncio.Event | None = None

    @property
    def queued(self) -> int:
        return len(self._waiters)

    @property
    def saturated(self) -> bool:
        return self.inflight >= self.concurrency

    def try_enter(self) -> bool:
        """Take a slot now if one is free."""
        if self.inflight < self.concurrency and not self._waiters:
            self.inflight += 1
            return True
        return False

    def can_queue(self) -> bool:
        return len(self._waiters) < self.queue_depth

    async def wait(self, within: float) -> None:
        """Queue for a slot; raises ``TimeoutError`` after ``within`` seconds."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            async with asyncio.timeout(within):
                await fut
        except BaseException:
            if fut.done() and not fut.cancelled():
                self.leave()  # the slot was handed over as we gave up: pass it on
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(fut)
                self._check_idle()
            raise

    def leave(self) -> None:
        """Give a slot back: straight to the oldest waiter, if any."""
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                return
        self.inflight -= 1
        self._check_idle()

    def _check_idle(self) -> None:
        if self._idle is not None and self.inflight == 0 and not self._waiters:
            self._idle.set()

    async def wait_idle(self) -> None:
        """Return once nothing is in flight or queued."""
        if self.inflight == 0 and not self._waiters:
            return
        self._idle = asyncio.Event()
        await self._idle.wait()
