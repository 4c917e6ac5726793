"""Small helpers over redis-py's stream replies and groups, so the runner
reads as policy: replies come as RESP2 lists or RESP3 maps depending on
the connection's protocol, and a consumer group must exist before its
first read (and again if someone deleted the stream).

``read_group`` is the runner's ``XREADGROUP``: on a connection of the
client's pool, packed and parsed by hiredis (redis-py's per-command path,
a timeout and Python parsing per reply, was the most of a read's cost,
and a read brings a handful of messages at a few thousand a second).
"""

from __future__ import annotations

import asyncio
from typing import Any

import hiredis
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from ember_operator.dispatch.batch import read_replies, resp
from ember_operator.dispatch.sources import Lane

Entries = list[tuple[str, dict[bytes, bytes]]]


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


async def read_group(
    redis: Redis, lane: Lane, consumer: str, start: str, count: int, block_ms: int | None = None
) -> Entries:
    """``XREADGROUP`` of ``lane`` from ``start`` (``>``: new entries), up to
    ``count``, blocking up to ``block_ms`` when given."""
    command: list[str | int] = ["XREADGROUP", "GROUP", lane.group, consumer, "COUNT", count]
    if block_ms is not None:
        command += ["BLOCK", block_ms]
    command += ["STREAMS", lane.stream, start]
    pool = redis.connection_pool
    conn = await pool.get_connection()  # type: ignore[no-untyped-call]
    try:
        stream = getattr(conn, "_reader", None)
        if stream is None:  # not the connection class this was written for
            await conn.send_command(*command)
            return first_stream(await conn.read_response())
        wait = (block_ms or 0) / 1000 + float(pool.connection_kwargs.get("socket_timeout") or 5)
        async with asyncio.timeout(wait):
            conn._writer.write(resp(command))
            (reply,) = await read_replies(stream, hiredis.Reader(), 1)
    except BaseException:
        await conn.disconnect()
        raise
    finally:
        await pool.release(conn)
    if isinstance(reply, ResponseError):
        raise reply
    if not reply:
        return []
    out: Entries = []
    for entry_id, flat in next(iter(reply.values())) if isinstance(reply, dict) else reply[0][1]:
        fields = dict(zip(flat[::2], flat[1::2], strict=True)) if flat else {}
        out.append((entry_id.decode(), fields))
    return out
