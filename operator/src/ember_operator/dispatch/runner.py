"""One source's consumer: its lanes' readers, a bounded set of calls in
flight, the heartbeat that keeps held messages ours, and the claim of
messages a dead consumer left.

Reading never outruns the bound: a lane reads only as many entries as
there is room for (in flight plus read-and-waiting stays within twice the
source's bound, three times for due retries, which go first; calls in
flight stay within it). While a message is held, the
heartbeat re-claims it every third of the visibility timeout (``XCLAIM
JUSTID``, which resets its idle time); a consumer that dies stops beating,
and after the visibility timeout any other one takes its messages with
``XAUTOCLAIM``. A consumer that restarts under the same name first takes
back what it held before (``XREADGROUP`` from ``0``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from functools import partial
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ember_operator.dispatch.deliver import Deps, deliver
from ember_operator.dispatch.policy import Throttle
from ember_operator.dispatch.sources import Lane, Source
from ember_operator.dispatch.streams import ensure_group, entries, read_group
from ember_runtime import logs

Entry = tuple[Lane, str, dict[bytes, bytes], int]  # lane, entry id, fields, deliveries
ERROR_PAUSE = 1.0


class SourceRunner:
    def __init__(self, source: Source, deps: Deps) -> None:
        self.source = source
        self.d = deps
        self.consumer = deps.outcomes.consumer
        self.throttle = Throttle(source.concurrency)
        self.waiting: deque[Entry] = deque()
        self.running: dict[tuple[str, str], asyncio.Task[Any]] = {}  # (stream, id) -> call
        self.held: set[tuple[str, str]] = set()  # waiting or running
        self.room = asyncio.Event()
        self.tasks: set[asyncio.Task[Any]] = set()
        self.readers: list[asyncio.Task[Any]] = []
        self.reading = False
        self.paused_until = 0.0
        self._pump_timer: asyncio.TimerHandle | None = None
        self.loop = asyncio.get_running_loop()  # kept: the hot path schedules on it

    # --- lifecycle --------------------------------------------------------

    def start(self) -> None:
        self.reading = True
        self.readers = [self._spawn(self._read(lane)) for lane in self.source.lanes]
        self._spawn(self._heartbeat())

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = self.loop.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def stop_reading(self) -> None:
        """Readers stop (a blocked read is cut; whatever Redis handed it is
        in this consumer's pending list, claimed again later: nothing lost)."""
        self.reading = False
        self.room.set()
        for t in self.readers:
            t.cancel()
        for t in self.readers:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t

    @property
    def busy(self) -> bool:
        return bool(self.running or self.waiting)

    async def abandon(self) -> None:
        """Stop now (the drain ran out, or a test kills a consumer): calls in
        flight are cut, their messages stay unacknowledged."""
        self.reading = False
        self.waiting.clear()
        self.held.clear()
        for t in list(self.tasks):
            t.cancel()
        for t in list(self.tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t

    # --- reading ------------------------------------------------------------

    def _room(self, lane: Lane) -> int:
        """How many entries ``lane`` may read now. Due retries get a share
        of their own and go first: a retry waits for a free call, never
        behind the whole backlog (its backoff is a promise)."""
        share = 3 if lane.stream == self.source.slot.retries else 2
        return self.throttle.allowed * share - len(self.waiting) - len(self.running)

    async def _read(self, lane: Lane) -> None:
        settings = self.d.settings
        claim_every = max(0.1, settings.visibility_timeout_seconds / 4)
        last_claim = 0.0
        own_pending = True  # first: what this consumer name held before a restart
        pending_from = "0"
        cursor = "0-0"
        block_ms = int(min(settings.read_block_seconds, claim_every) * 1000)
        while self.reading:
            try:
                if own_pending:
                    await ensure_group(self.d.redis, lane)
                while self.reading and self._room(lane) <= 0:
                    self.room.clear()
                    await self.room.wait()
                if not self.reading:
                    return
                n = self._room(lane)
                claimed: list[tuple[str, dict[bytes, bytes]]] = []
                now = time.monotonic()
                if own_pending:
                    got = await read_group(self.d.redis, lane, self.consumer, pending_from, n)
                    own_pending = len(got) >= n
                    pending_from = got[-1][0] if got else pending_from
                    self._take(lane, got, deliveries=2)
                    continue
                if now - last_claim >= claim_every:
                    last_claim = now
                    cursor, claimed = await self._claim(lane, cursor, n)
                if claimed:
                    continue
                got = await read_group(self.d.reader, lane, self.consumer, ">", n, block_ms)
                self._take(lane, got)
            except asyncio.CancelledError:
                raise
            except ResponseError as e:
                if "NOGROUP" in str(e):  # the stream was deleted: make it again
                    own_pending, pending_from = True, "0"
                    continue
                await self._error_pause(lane, e)
            except (RedisConnectionError, RedisTimeoutError, RedisError, OSError) as e:
                await self._error_pause(lane, e)

    async def _error_pause(self, lane: Lane, e: Exception) -> None:
        logs.emit(
            "warning",
            "reading a stream failed; retrying",
            stream=lane.stream,
            source=self.source.label,
            error=repr(e),
        )
        await asyncio.sleep(ERROR_PAUSE)

    async def _claim(
        self, lane: Lane, cursor: str, n: int
    ) -> tuple[str, list[tuple[str, dict[bytes, bytes]]]]:
        idle_ms = int(self.d.settings.visibility_timeout_seconds * 1000)
        raw = await self.d.redis.xautoclaim(
            lane.stream, lane.group, self.consumer, idle_ms, start_id=cursor, count=n
        )
        nxt = raw[0].decode() if isinstance(raw[0], bytes) else str(raw[0])
        got = entries(raw[1])
        if got:
            self.d.metrics.count(self.source, "claimed", len(got))
            logs.emit(
                "warning",
                "claimed messages of a consumer that stopped answering",
                source=self.source.label,
                stream=lane.stream,
                count=len(got),
            )
            for eid, fields in got:
                info = await self.d.redis.xpending_range(
                    lane.stream, lane.group, min=eid, max=eid, count=1
                )
                times = int(info[0]["times_delivered"]) if info else 2
                self._take(lane, [(eid, fields)], deliveries=times)
        return nxt, got

    def _take(
        self, lane: Lane, got: list[tuple[str, dict[bytes, bytes]]], deliveries: int = 1
    ) -> None:
        first = lane.stream == self.source.slot.retries
        for eid, fields in reversed(got) if first else got:
            if (lane.stream, eid) in self.held:
                continue  # claimed back while we still hold it
            self.held.add((lane.stream, eid))
            entry = (lane, eid, fields, deliveries)
            if first:
                self.waiting.appendleft(entry)
            else:
                self.waiting.append(entry)
        self.pump()

    # --- calling ------------------------------------------------------------

    def pump(self) -> None:
        loop = self.loop
        wait = self.paused_until - time.time()
        if wait > 0:
            if self._pump_timer is None:
                self._pump_timer = loop.call_later(wait, self._unpause)
            return
        while self.waiting and len(self.running) < self.throttle.allowed:
            lane, eid, fields, deliveries = self.waiting.popleft()
            if not fields:  # deleted while pending: nothing to run
                self.held.discard((lane.stream, eid))
                self._spawn(self.d.outcomes.ack(lane, eid))
                continue
            key = (lane.stream, eid)
            # The delivery itself is the task (no wrapper coroutine: each
            # level is paid again on every resume); _called cleans up.
            call = deliver(self.d, self.source, self.throttle, lane, eid, fields, deliveries)
            task = loop.create_task(call)
            self.tasks.add(task)
            self.running[key] = task
            task.add_done_callback(partial(self._called, key, lane, eid))
        self.d.metrics.inflight[self.source] = len(self.running)

    def _unpause(self) -> None:
        self._pump_timer = None
        self.pump()

    def _called(self, key: tuple[str, str], lane: Lane, eid: str, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        error = None if task.cancelled() else task.exception()
        if error is not None:  # left pending: claimed again after the visibility timeout
            logs.emit(
                "error",
                "delivery failed; the message stays pending",
                entry=eid,
                stream=lane.stream,
                source=self.source.label,
                error=repr(error),
            )
        elif not task.cancelled():
            if self.throttle.pressured:
                self.paused_until = time.time() + self.throttle.pause
            due = task.result()
            if due is not None:
                self.wake_at(due)
        self.running.pop(key, None)
        self.held.discard(key)
        self.room.set()
        if self.reading or self.waiting:
            self.pump()
        self.d.metrics.inflight[self.source] = len(self.running)

    def wake_at(self, due: float) -> None:
        """Move this source's due retries when ``due`` (epoch) comes."""
        self.loop.call_later(max(0.0, due - time.time()) + 0.001, self._move_soon)

    def _move_soon(self) -> None:
        if self.reading:
            self._spawn(self.move_due())

    async def move_due(self) -> None:
        try:
            await self.d.outcomes.move_due(self.source, time.time())
        except (RedisError, OSError) as e:
            logs.emit(
                "warning", "moving due retries failed", source=self.source.label, error=repr(e)
            )

    # --- heartbeat ------------------------------------------------------------

    async def _heartbeat(self) -> None:
        every = max(0.05, self.d.settings.visibility_timeout_seconds / 3)
        while True:
            await asyncio.sleep(every)
            held: dict[Lane, list[str]] = {}
            for lane, eid, _, _ in self.waiting:
                held.setdefault(lane, []).append(eid)
            by_stream = {lane.stream: lane for lane in self.source.lanes}
            for stream, eid in list(self.running):
                held.setdefault(by_stream[stream], []).append(eid)
            for lane, ids in held.items():
                try:
                    await self.d.redis.xclaim(
                        lane.stream, lane.group, self.consumer, 0, list[Any](ids), justid=True
                    )
                except (RedisError, OSError) as e:
                    logs.emit(
                        "warning", "heartbeat failed", source=self.source.label, error=repr(e)
                    )
