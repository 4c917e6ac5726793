"""The async invocation store: submit an invocation, read its status.

The gateway's ``/async/`` API and the cron scheduler call ``submit``; the
dispatcher takes it from there. A submission is one ``XADD`` of the packed
message to the Function's stream, and nothing else: the invocation id is
the new entry's id plus 64 random bits (``message.invocation_id``), so it
is known from the ``XADD``'s answer and names where the message waits.
With an idempotency key it is one Lua script (``SUBMIT``): the key is
looked up, and only when it is new are the entry and the key written, all
or nothing, in the Function's slot. A cron tick submitted twice (two
replicas, a restart) or a client retrying a POST therefore makes one
invocation, and a crash can never leave a key that points at an
invocation that was not queued.

The record (status, attempts, timestamps, the result) is written by the
first attempt (``outcomes``) and lives for the retention window; so do
idempotency keys. Until then ``get`` reads the stream entry itself
("queued"). Writing a record at submission as well was a third of the
Redis work per async message (``bench/async_throughput.py``).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis

from ember_operator.dispatch import keys, scripts
from ember_operator.dispatch.batch import Batcher
from ember_operator.dispatch.message import Message, from_fields, keep_header, pack

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


def new_token() -> str:
    """The random part of an invocation id: 64 bits, hex."""
    return _entropy.take(8).hex()


_ID = re.compile(r"^(\d{1,20}-\d{1,20})-([0-9a-f]{16})$")


def split_id(invocation_id: str) -> tuple[str, str] | None:
    """(stream entry id, token) of an id ``message.invocation_id`` made;
    None for anything else."""
    m = _ID.match(invocation_id)
    return (m.group(1), m.group(2)) if m else None


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
        token = new_token()
        message = Message(
            id=token,
            body=body,
            headers=tuple(headers) if kept else stored_headers(headers),  # type: ignore[arg-type]
            first=time.time(),
            deadline=deadline,
            callback=callback_url,
            idempotency_key=idempotency_key,
            source=source,
        )
        packed = pack(message, by_entry=True)
        if idempotency_key:
            ks = [slot.stream, slot.idempotency(idempotency_key)]
            return self.batch.call("submit", ks, [token, str(self.retention), "m", packed])
        suffix = b"-" + token.encode()
        xadd = ("XADD", slot.stream, "*", "m", packed)
        return self.batch.command(*xadd, then=lambda entry: (entry + suffix, 1))

    async def get(self, namespace: str, function: str, invocation_id: str) -> dict[str, Any] | None:
        """The invocation's status and result as the API shows it; None
        when unknown (or past the retention window). An invocation that no
        attempt has reached yet has no record: it is read from its stream
        entry, in the same transaction (so one finishing meanwhile is seen
        in one place or the other)."""
        slot = keys.function_keys(namespace, function)
        record = slot.record(invocation_id)
        entry = split_id(invocation_id)
        if entry is None:
            raw: dict[bytes, bytes] = await self.redis.hgetall(record)  # type: ignore[assignment]
            return describe(invocation_id, raw) if raw else None
        pipe = self.redis.pipeline(transaction=True)
        pipe.hgetall(record)
        pipe.xrange(slot.stream, entry[0], entry[0], count=1)
        raw, waiting = await pipe.execute()
        if raw:
            return describe(invocation_id, raw)
        if not waiting:
            return None
        eid, fields = waiting[0]
        m = from_fields(fields, eid.decode() if isinstance(eid, bytes) else str(eid))
        if m.id != invocation_id:
            return None  # the entry is there, the token is not its
        return {
            "invocationId": invocation_id,
            "function": f"{namespace}/{function}",
            "status": "queued",
            "attempts": 0,
            "source": m.source,
            "createdAt": _iso(m.first),
            "startedAt": None,
            "finishedAt": None,
        }


def submitted(result: Any) -> tuple[str, bool]:
    """``SUBMIT``'s answer: (invocation id, created)."""
    got, created = result
    return got.decode() if isinstance(got, bytes) else str(got), bool(created)


def _iso(value: bytes | float | None) -> str | None:
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
