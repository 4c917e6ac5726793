"""Small helpers over redis-py's stream replies and groups, so the runner
reads as policy: replies come as RESP2 lists or RESP3 maps depending on
the connection's protocol, and a consumer group must exist before its
first read (and again if someone deleted the stream).
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from ember_operator.dispatch.sources import Lane


async def ensure_group(redis: Redis, lane: Lane) -> None:
    try:
        await redis.xgroup_create(lane.stream, lane.group, id=lane.start, mkstream=True)
    except ResponseError as e:
        if "BUSYGROUP" not in str(e):
            raise


def entries(raw: Any) -> list[tuple[str, dict[bytes, bytes]]]:
    """XREADGROUP's or XAUTOCLAIM's entries; deleted ones (no fields) kept
    with empty fields, so they are acknowledged."""
    out = []
    for entry_id, fields in raw or []:
        eid = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
        out.append((eid, dict(fields or {})))
    return out


def first_stream(raw: Any) -> list[tuple[str, dict[bytes, bytes]]]:
    """The entries of the one stream an XREADGROUP named (RESP2 or RESP3)."""
    if not raw:
        return []
    if isinstance(raw, dict):
        return entries(next(iter(raw.values()))[0])
    return entries(raw[0][1])
