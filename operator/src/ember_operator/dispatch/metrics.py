"""The dispatcher's Prometheus metrics: what it did (counters, per source)
and what waits (gauges read from Redis every few seconds, not on each
scrape, so a scrape costs Redis nothing).

Every replica reads every stream, so each reports the same backlog
gauges; take their max across replicas, and the sum of the counters.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from redis.asyncio import Redis

from ember_operator.dispatch.message import entry_time
from ember_operator.dispatch.sources import Source

EVENTS = (
    ("attempts", "Attempts made (calls through the gateway)."),
    ("succeeded", "Invocations that succeeded."),
    ("retried", "Attempts that failed and were scheduled again."),
    ("dead_lettered", "Invocations moved to the dead-letter stream."),
    ("failed", "Invocations given up without a dead letter (their deadline passed)."),
    ("back_pressure", "Answers that said slow down (429, the gateway's held queue full)."),
    ("skipped", "Copies only acknowledged: already finished, superseded, or duplicate keys."),
    ("claimed", "Messages claimed from a consumer that stopped answering."),
)


@dataclass
class Backlog:
    queued: int = 0  # not delivered yet (the stream's lag, the retry stream, due retries)
    delayed: int = 0  # retries waiting for their time
    pending: int = 0  # delivered to a consumer, not acknowledged
    oldest_seconds: float = 0.0  # the oldest unfinished entry of the main stream


def _text(v: object) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _labels(s: Source) -> str:
    esc = [v.replace("\\", "\\\\").replace('"', '\\"') for v in (s.namespace, s.name)]
    return f'kind="{s.kind}",namespace="{esc[0]}",name="{esc[1]}"'


class DispatchMetrics:
    def __init__(self) -> None:
        self.counts: dict[Source, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.backlog: dict[Source, Backlog] = {}
        self.inflight: dict[Source, int] = {}

    def count(self, source: Source, event: str, n: int = 1) -> None:
        self.counts[source][event] += n

    async def collect(self, redis: Redis, sources: Iterable[Source]) -> None:
        now = time.time()
        fresh: dict[Source, Backlog] = {}
        for s in sources:
            fresh[s] = await backlog(redis, s, now)
        self.backlog = fresh

    def render(self) -> bytes:
        out: list[str] = []

        def metric(name: str, kind: str, help_: str, samples: list[tuple[str, float]]) -> None:
            out.append(f"# HELP {name} {help_}")
            out.append(f"# TYPE {name} {kind}")
            out.extend(f"{name}{{{labels}}} {value:g}" for labels, value in samples)

        for event, help_ in EVENTS:
            samples = [(_labels(s), float(c.get(event, 0))) for s, c in self.counts.items()]
            metric(f"ember_dispatch_{event}_total", "counter", help_, samples)
        metric(
            "ember_dispatch_inflight",
            "gauge",
            "Invocations in flight in this replica.",
            [(_labels(s), float(n)) for s, n in self.inflight.items()],
        )
        b = self.backlog
        for field, help_ in (
            ("queued", "Messages not delivered yet (stream lag, retries due or delayed)."),
            ("delayed", "Retries waiting for their backoff."),
            ("pending", "Messages delivered to a consumer and not acknowledged yet."),
        ):
            metric(
                f"ember_dispatch_{field}",
                "gauge",
                help_,
                [(_labels(s), float(getattr(v, field))) for s, v in b.items()],
            )
        metric(
            "ember_dispatch_oldest_message_age_seconds",
            "gauge",
            "Age of the oldest unfinished message of the source's main stream.",
            [(_labels(s), v.oldest_seconds) for s, v in b.items()],
        )
        return ("\n".join(out) + "\n").encode()


async def backlog(redis: Redis, s: Source, now: float) -> Backlog:
    main, retry = s.lanes
    out = Backlog()
    out.delayed = int(await redis.zcard(s.slot.delayed))
    oldest: list[str] = []
    for lane in (main, retry):
        groups = {}
        if await redis.exists(lane.stream):
            groups = {_text(g["name"]): g for g in await redis.xinfo_groups(lane.stream)}
        g = groups.get(lane.group)
        if g is None:
            continue
        pending = int(g.get("pending") or 0)
        out.pending += pending
        if lane.owned:  # acknowledged entries are deleted: what is left is unfinished
            length = int(await redis.xlen(lane.stream))
            out.queued += max(0, length - pending)
            if lane is main and length:
                first = await redis.xrange(lane.stream, count=1)
                oldest += [_text(first[0][0])] if first else []
        else:
            lag = g.get("lag")
            out.queued += int(lag) if lag is not None else 0
            if pending:
                summary = await redis.xpending(lane.stream, lane.group)
                if summary.get("min"):
                    oldest.append(_text(summary["min"]))
            last = _text(g.get("last-delivered-id") or b"0-0")
            nxt = await redis.xrange(lane.stream, min=f"({last}", count=1)
            oldest += [_text(nxt[0][0])] if nxt else []
    out.queued += out.delayed
    if oldest:
        out.oldest_seconds = max(0.0, now - min(entry_time(e) for e in oldest))
    return out
