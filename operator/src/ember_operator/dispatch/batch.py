"""Script calls made at the same moment go to Redis in one pipeline.

Why: at a few thousand messages a second, the dispatcher's own cost per
message was mostly redis-py's per-command round trip (pool, write, read,
parse), twice per message (``BEGIN``, ``SUCCEED``), and the gateway's
once per submission (``SUBMIT``). Calls queued in one
turn of the event loop are sent together and their answers handed back
one by one, so a burst of 64 answers costs one round trip, not 64. Each
call is still its own atomic script; nothing is made atomic together.

Scripts are called by their SHA (``EVALSHA``); after a Redis restart
(scripts gone: ``NOSCRIPT``) they are loaded again and the calls that
failed for it are sent again, once.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

Arg = str | bytes | int | float
Call = tuple[str, Sequence[str], Sequence[Arg], "asyncio.Future[Any]"]


class Batcher:
    def __init__(self, redis: Redis, scripts: Mapping[str, str]) -> None:
        self.redis = redis
        self.sources = dict(scripts)
        self.shas = {name: hashlib.sha1(src.encode()).hexdigest() for name, src in scripts.items()}
        self.pending: list[Call] = []
        self.tasks: set[asyncio.Task[None]] = set()

    def call(self, name: str, keys: Sequence[str], args: Sequence[Arg]) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        if not self.pending:
            loop.call_soon(self._flush)
        self.pending.append((name, keys, args, fut))
        return fut

    def _flush(self) -> None:
        batch, self.pending = self.pending, []
        task = asyncio.get_running_loop().create_task(self._send(batch))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _send(self, batch: list[Call], again: bool = True) -> None:
        try:
            pipe = self.redis.pipeline(transaction=False)
            for name, keys, args, _ in batch:
                pipe.evalsha(self.shas[name], len(keys), *keys, *args)
            results = await pipe.execute(raise_on_error=False)
            missing = [
                c for c, r in zip(batch, results, strict=True) if isinstance(r, NoScriptError)
            ]
            if missing and again:
                for name in {c[0] for c in missing}:
                    await self.redis.script_load(self.sources[name])
                await self._send(missing, again=False)
            for (_, _, _, fut), result in zip(batch, results, strict=True):
                if fut.done() or (again and isinstance(result, NoScriptError)):
                    continue
                if isinstance(result, Exception):
                    fut.set_exception(result)
                else:
                    fut.set_result(result)
        except Exception as e:  # the connection failed: every call in the batch did
            for _, _, _, fut in batch:
                if not fut.done():
                    fut.set_exception(e)
