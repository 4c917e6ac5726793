"""Results to callback URLs: best effort, off the stream's path.

A callback is posted after the invocation's final outcome is written and
its entry acknowledged, by a task of its own, with a few retries. It can
never hold up a stream, and a dead callback receiver costs nothing but
its own tries; the result stays readable with ``GET /async/...``. (Which
hosts may be called was checked when the invocation was submitted.)
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

from ember_runtime import logs

MAX_PENDING = 1000
BACKOFF = (0.5, 1.0, 2.0, 4.0)


class Callbacks:
    def __init__(self, attempts: int, timeout_seconds: float) -> None:
        self.attempts = max(1, attempts)
        self.timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self.tasks: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None
        self.delivered = 0
        self.failed = 0

    def post(self, url: str, payload: dict[str, Any]) -> None:
        if len(self.tasks) >= MAX_PENDING:
            self.failed += 1
            logs.emit(
                "warning",
                "callback dropped: too many pending",
                url=url,
                request_id=payload.get("invocationId"),
            )
            return
        task = asyncio.get_running_loop().create_task(self._deliver(url, payload))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _deliver(self, url: str, payload: dict[str, Any]) -> None:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self.timeout, trust_env=False)
        data = json.dumps(payload, separators=(",", ":")).encode()
        headers = {
            "content-type": "application/json",
            "x-ember-invocation-id": payload["invocationId"],
        }
        why = ""
        for attempt in range(self.attempts):
            try:
                async with self._session.post(url, data=data, headers=headers) as r:
                    await r.read()
                    if r.status < 500 and r.status != 429:
                        self.delivered += 1
                        return
                    why = f"HTTP {r.status}"
            except (TimeoutError, aiohttp.ClientError, OSError) as e:
                why = repr(e)
            if attempt + 1 < self.attempts:
                await asyncio.sleep(BACKOFF[min(attempt, len(BACKOFF) - 1)])
        self.failed += 1
        logs.emit(
            "warning", "callback failed", url=url, error=why, request_id=payload["invocationId"]
        )

    async def close(self, grace: float = 5.0) -> None:
        if self.tasks and grace > 0:
            await asyncio.wait(list(self.tasks), timeout=grace)
        pending = list(self.tasks)
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
