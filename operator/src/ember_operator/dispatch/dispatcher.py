"""The dispatcher: a runner per source, kept in step with the sources
(Functions and queue Triggers come and go), the periodic move of due
retries, the backlog metrics, and the order of a graceful stop.

It runs in any event loop with any ``SourceSet``: the process
(``service``) feeds it from the cluster, tests and benchmarks from a
static list. Stop (SIGTERM): every reader stops, calls in flight (and
messages already read) finish within ``drain_seconds``; what is left
stays pending in Redis for another replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Coroutine
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from ember_operator.dispatch.callbacks import Callbacks
from ember_operator.dispatch.connect import open_redis
from ember_operator.dispatch.deliver import Deps
from ember_operator.dispatch.invoke import Invoker
from ember_operator.dispatch.metrics import DispatchMetrics
from ember_operator.dispatch.outcomes import Outcomes
from ember_operator.dispatch.runner import SourceRunner
from ember_operator.dispatch.settings import DispatchSettings
from ember_operator.dispatch.sources import Source, SourceKey, SourceSet
from ember_runtime import logs

METRICS_EVERY = 5.0


class Dispatcher:
    def __init__(
        self,
        settings: DispatchSettings,
        sources: SourceSet | None = None,
        *,
        redis: Redis | None = None,
        consumer: str | None = None,
    ) -> None:
        self.settings = settings
        self.consumer = consumer or settings.consumer
        self.sources = sources or SourceSet(settings.async_policy, settings.concurrency)
        self.sources.changed = self._changed
        timeout = settings.redis_timeout_seconds
        self.redis = redis or open_redis(
            settings.redis_url, settings.redis_password, timeout=timeout
        )
        self.reader = open_redis(
            settings.redis_url,
            settings.redis_password,
            timeout=settings.read_block_seconds + timeout,
        )
        self.metrics = DispatchMetrics()
        self.deps = Deps(
            self.redis,
            self.reader,
            Outcomes(
                self.redis, self.consumer, settings.retention_seconds, settings.max_result_bytes
            ),
            Invoker(settings.gateway_url, settings.call_timeout_seconds, settings.max_result_bytes),
            Callbacks(settings.callback_attempts, settings.callback_timeout_seconds),
            self.metrics,
            settings,
        )
        self.runners: dict[SourceKey, SourceRunner] = {}
        self.started = False
        self.redis_ok = False
        self._tasks: list[asyncio.Task[None]] = []
        self._syncing = asyncio.Lock()
        self._retiring: set[SourceRunner] = set()  # of removed or changed sources
        self._bg: set[asyncio.Task[None]] = set()

    # --- sources ------------------------------------------------------------

    def _changed(self) -> None:
        if self.started:
            self._background(self.sync())

    def _background(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._bg.add(task)  # held: the loop keeps only weak references
        task.add_done_callback(self._bg.discard)

    async def sync(self) -> None:
        """Start a runner per new source; stop (draining) removed or changed ones.
        One at a time: an informer's first list changes many sources at once,
        and two overlapping syncs would each start a runner for the same one."""
        async with self._syncing:
            await self._sync()

    async def _sync(self) -> None:
        want = dict(self.sources.sources)  # events may change it while this awaits
        for key, runner in list(self.runners.items()):
            if want.get(key) != runner.source:
                del self.runners[key]
                await runner.stop_reading()
                self._retiring.add(runner)
                self._background(self._finish(runner))
        for key, source in want.items():
            if key not in self.runners:
                await self._write_meta(source)
                runner = self.runners[key] = SourceRunner(source, self.deps)
                runner.start()

    async def _write_meta(self, source: Source) -> None:
        """Where a Trigger's dead letters go, for ``redrive --trigger``."""
        if source.kind != "trigger":
            return
        with contextlib.suppress(RedisError, OSError):
            await self.redis.hset(
                source.slot.meta,
                mapping={"stream": source.main.stream, "dead_letters": source.dead_letters},
            )

    async def _finish(self, runner: SourceRunner) -> None:
        await drained([runner], self.settings.drain_seconds)
        await runner.abandon()
        self._retiring.discard(runner)

    # --- lifecycle ----------------------------------------------------------

    async def start(self) -> None:
        self.started = True
        await self.sync()
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._poll()), loop.create_task(self._collect())]

    async def _poll(self) -> None:
        """Every runner's due retries, for retries another replica scheduled
        (each replica wakes for its own at their exact time)."""
        while True:
            await asyncio.sleep(self.settings.poll_seconds)
            for runner in list(self.runners.values()):
                await runner.move_due()

    async def _collect(self) -> None:
        while True:
            try:
                await self.redis.ping()
                await self.metrics.collect(self.redis, [r.source for r in self.runners.values()])
                self.redis_ok = True
            except (RedisError, OSError) as e:
                if self.redis_ok:
                    logs.emit("warning", "redis unreachable", error=repr(e))
                self.redis_ok = False
            await asyncio.sleep(METRICS_EVERY)

    async def stop(self, drain_seconds: float | None = None) -> None:
        """Stop reading; let what was read finish (bounded); close."""
        drain = self.settings.drain_seconds if drain_seconds is None else drain_seconds
        self.started = False
        for t in self._tasks:
            t.cancel()
        runners = list(self.runners.values())
        self.runners.clear()
        await asyncio.gather(*(r.stop_reading() for r in runners))
        runners += self._retiring
        await drained(runners, drain)
        await asyncio.gather(*(r.abandon() for r in runners))
        await self.deps.callbacks.close(grace=min(5.0, drain))
        await self.deps.invoker.close()
        await self.reader.aclose()
        await self.redis.aclose()

    async def kill(self) -> None:
        """Stop at once, acknowledging nothing more (a crash, for tests)."""
        self.started = False
        for t in self._tasks:
            t.cancel()
        runners = [*self.runners.values(), *self._retiring]
        self.runners.clear()
        await asyncio.gather(*(r.abandon() for r in runners))
        await self.deps.callbacks.close(grace=0)
        await self.deps.invoker.close()
        await self.reader.aclose()
        await self.redis.aclose()

    @property
    def inflight(self) -> int:
        return sum(len(r.running) for r in self.runners.values())


async def drained(runners: list[SourceRunner], seconds: float) -> bool:
    """Wait (bounded) until the runners hold nothing; whether they got there."""
    deadline = time.monotonic() + seconds
    while any(r.busy for r in runners):
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.05)
    return True
