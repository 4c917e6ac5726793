"""The async invocation store: submit an invocation, read its status.

The gateway's ``/async/`` API and the cron scheduler call ``submit``; the
dispatcher takes it from there. Submission is one Lua script (``SUBMIT``):
the idempotency key is looked up, and only when it is new are the stream
entry, the invocation record and the key written, all or nothing, in the
Function's slot. A cron tick submitted twice (two replicas, a restart) or a
client retrying a POST therefore makes one invocation, and a crash can
never leave a key that points at an invocation that was not queued.

Records (status, attempts, timestamps, the result) live for the retention
window; so do idempotency keys. The stream entry is the packed message,
one field (``m``): every extra field costs the gateway's Redis client
more per submission than packing does.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis

from ember_operator.dispatch import keys, scripts
from ember_operator.dispatch.batch import Batcher
from ember_operator.dispatch.message import Message, keep_header, pack

DEFAULT_RETENTION = 24 * 3600
STATUSES = ("queued", "running", "succeeded", "failed", "dead-lettered")
FINAL = frozenset({"succeeded", "failed", "dead-lettered"})

HeaderPairs = Iterable[tuple[str, str]] | Mapping[str, str]


class _Entropy:
    """Random bytes from the OS drawn 4 KiB at a time: a getrandom call per
    id showed in the gateway's profile of submissions."""

    def __init__(self) -> None:
        self.pool, self.at = b"", 0

    def take(self, n: int) -> bytes:
        if self.at + n > len(self.pool):
            self.pool, self.at = os.urandom(4096), 0
        self.at += n
        return self.pool[self.at - n : self.at]


_entropy = _Entropy()


def new_invocation_id() -> str:
    """Time-ordered (ms, hex) then 64 random bits: unique, unguessable, and
    sorts by submission."""
    return f"{int(time.time() * 1000):011x}{_entropy.take(8).hex()}"


def stored_headers(headers: HeaderPairs) -> tuple[tuple[str, str], ...]:
    """The request headers an invocation keeps (names in lower case)."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    out = []
    for k, v in pairs:
        k = k.lower()
        if keep_header(k):
            out.append((k, v))
    return tuple(out)


class Invocations:
    def __init__(self, redis: Redis, retention_seconds: int = DEFAULT_RETENTION) -> None:
        self.redis = redis
        self.retention = max(1, int(retention_seconds))
        # Submissions arriving together go to Redis in one pipeline.
        self.batch = Batcher(redis, {"submit": scripts.SUBMIT})

    async def submit(
        self,
        namespace: str,
        function: str,
        body: bytes,
        headers: HeaderPairs,
        *,
        idempotency_key: str | None = None,
        callback_url: str | None = None,
        deadline: float | None = None,
        source: str = "async",
    ) -> tuple[str, bool]:
        """Queue one invocation of ``namespace/function``; returns its id
        and whether it is new (False: ``idempotency_key`` was seen within
        the retention window, and the id is the first submission's).
        ``deadline`` is epoch seconds: not run after it."""
        got = await self.enqueue(
            namespace,
            function,
            body,
            headers,
            idempotency_key=idempotency_key,
            callback_url=callback_url,
            deadline=deadline,
            source=source,
        )
        return submitted(got)

    def enqueue(
        self,
        namespace: str,
        function: str,
        body: bytes,
        headers: HeaderPairs,
        *,
        idempotency_key: str | None = None,
        callback_url: str | None = None,
        deadline: float | None = None,
        source: str = "async",
        kept: bool = False,
    ) -> asyncio.Future[Any]:
        """``submit`` without a coroutine (the gateway's hot path answers from
        the future's callback): its result reads with ``submitted``.
        ``kept``: ``headers`` are already the ones to keep (``stored_headers``)."""
        slot = keys.function_keys(namespace, function)
        invocation_id = new_invocation_id()
        now = time.time()
        message = Message(
            id=invocation_id,
            body=body,
            headers=tuple(headers) if kept else stored_headers(headers),  # type: ignore[arg-type]
            first=now,
            deadline=deadline,
            callback=callback_url,
            idempotency_key=idempotency_key,
            source=source,
        )
        script_keys = [slot.stream, slot.record(invocation_id)]
        if idempotency_key:
            script_keys.append(slot.idempotency(idempotency_key))
        args: list[str | bytes] = [
            invocation_id,
            str(self.retention),
            repr(now),
            f"{namespace}/{function}",
            source,
            callback_url or "",
            "m",
            pack(message),
        ]
        return self.batch.call("submit", script_keys, args)

    async def get(self, namespace: str, function: str, invocation_id: str) -> dict[str, Any] | None:
        """The invocation's status and result as the API shows it; None
        when unknown (or past the retention window)."""
        record = keys.function_keys(namespace, function).record(invocation_id)
        raw: dict[bytes, bytes] = await self.redis.hgetall(record)  # type: ignore[assignment]
        if not raw:
            return None
        return describe(invocation_id, raw)


def submitted(result: Any) -> tuple[str, bool]:
    """``SUBMIT``'s answer: (invocation id, created)."""
    got, created = result
    return got.decode() if isinstance(got, bytes) else str(got), bool(created)


def _iso(value: bytes | None) -> str | None:
    if not value:
        return None
    return datetime.fromtimestamp(float(value), UTC).isoformat().replace("+00:00", "Z")


def describe(invocation_id: str, raw: Mapping[bytes, bytes]) -> dict[str, Any]:
    """A record as JSON: the result body as text when it is UTF-8, else in
    base64 (``bodyEncoding`` says which)."""

    def text(name: str) -> str | None:
        v = raw.get(name.encode())
        return None if v is None else v.decode("utf-8", "replace")

    out: dict[str, Any] = {
        "invocationId": invocation_id,
        "function": text("function"),
        "status": text("status"),
        "attempts": int(text("attempts") or 0),
        "source": text("source"),
        "createdAt": _iso(raw.get(b"created")),
        "startedAt": _iso(raw.get(b"started")),
        "finishedAt": _iso(raw.get(b"finished")),
    }
    if raw.get(b"next"):
        out["nextAttemptAt"] = _iso(raw.get(b"next"))
    if raw.get(b"error"):
        out["error"] = text("error")
    if raw.get(b"result_status"):
        body = raw.get(b"result_body", b"")
        try:
            shown, encoding = body.decode("utf-8"), "text"
        except UnicodeDecodeError:
            shown, encoding = base64.b64encode(body).decode("ascii"), "base64"
        out["result"] = {
            "status": int(text("result_status") or 0),
            "headers": dict(json.loads(raw.get(b"result_headers") or b"[]")),
            "body": shown,
            "bodyEncoding": encoding,
            "truncated": raw.get(b"result_truncated") == b"1",
        }
    return out
