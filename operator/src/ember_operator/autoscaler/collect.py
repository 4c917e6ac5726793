"""Reading each Function's load from every gateway replica, once a tick.

Each gateway replica answers ``GET /_/stats`` on its admin port with
``{"functions": {"<ns>/<name>": {"inflight", "held", "requests_total"}}}``.
The sum over replicas is the Function's concurrency; a ``requests_total``
that changed on any replica means requests arrived (short ones can start
and end between two samples, so the counter is what keeps a busy function
from looking idle).

A replica that does not answer has its last sample used for one tick, then
it is dropped from the sum; as long as any listed replica is unread, the
snapshot is marked incomplete and the math never scales down on it.

Where the replicas are is someone else's concern (``gateways``): the
EndpointSlices of the gateway Service in the cluster, a fixed list in tests
and on a laptop. Addresses are ``host:port``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from ember_operator.kube.objects import Key

log = logging.getLogger("ember_operator.autoscaler")

STATS_PATH = "/_/stats"
FETCH_TIMEOUT = 1.0  # well inside a 2 s tick


@dataclass(frozen=True)
class Load:
    inflight: int = 0
    held: int = 0
    requests_total: int = 0


Stats = dict[Key, Load]
Fetch = Callable[[str], Awaitable[Stats]]  # address -> stats; raises when unreachable


@dataclass(frozen=True)
class Signal:
    """One Function's load this tick, over every replica that answered."""

    concurrency: int = 0
    requests_moved: bool = False


@dataclass
class Snapshot:
    functions: dict[Key, Signal] = field(default_factory=dict)
    complete: bool = True  # every listed replica answered
    answered: int = 0
    listed: int = 0


def parse_stats(body: Any) -> Stats:
    """The ``/_/stats`` document, keyed by (namespace, name); entries that
    do not have that shape are skipped, a body without ``functions`` is an
    error (it is not a gateway answering)."""
    functions = body.get("functions") if isinstance(body, Mapping) else None
    if not isinstance(functions, Mapping):
        raise ValueError("no 'functions' object in the stats")
    out: Stats = {}
    for name, entry in functions.items():
        namespace, _, fn = str(name).partition("/")
        if not namespace or not fn or not isinstance(entry, Mapping):
            continue
        with contextlib.suppress(TypeError, ValueError):
            out[(namespace, fn)] = Load(
                inflight=max(0, int(entry.get("inflight") or 0)),
                held=max(0, int(entry.get("held") or 0)),
                requests_total=int(entry.get("requests_total") or 0),
            )
    return out


class HttpFetch:
    """GETs ``/_/stats`` over one pooled aiohttp session."""

    def __init__(self, timeout: float = FETCH_TIMEOUT) -> None:
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def __call__(self, address: str) -> Stats:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self.timeout, trust_env=False)
        async with self._session.get(f"http://{address}{STATS_PATH}") as response:
            response.raise_for_status()
            return parse_stats(await response.json(content_type=None))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


@dataclass
class _Replica:
    stats: Stats
    missed: int = 0  # ticks in a row without an answer


class Collector:
    """Per-replica memory (last sample, counters) between ticks."""

    def __init__(self, fetch: Fetch | None = None) -> None:
        self.fetch: Fetch = fetch if fetch is not None else HttpFetch()
        self._replicas: dict[str, _Replica] = {}
        self.failures = 0  # fetches that failed, over the process's life

    async def collect(self, addresses: Collection[str]) -> Snapshot:
        listed = sorted(set(addresses))
        results = await asyncio.gather(*(self.fetch(a) for a in listed), return_exceptions=True)
        snap = Snapshot(listed=len(listed), complete=bool(listed))
        concurrency: dict[Key, int] = {}
        moved: set[Key] = set()
        for address, result in zip(listed, results, strict=True):
            before = self._replicas.get(address)
            if isinstance(result, BaseException):
                self.failures += 1
                snap.complete = False
                if before is None or before.missed >= 1:
                    if before is not None:
                        log.warning("gateway %s: no stats for two ticks: %r", address, result)
                    self._replicas.pop(address, None)
                    continue
                before.missed += 1
                stats = before.stats  # the last sample, for this one tick
            else:
                snap.answered += 1
                stats = result
                for key, load in stats.items():
                    old = before.stats.get(key) if before is not None else None
                    if load.requests_total != (old.requests_total if old else 0):
                        moved.add(key)
                self._replicas[address] = _Replica(stats)
            for key, load in stats.items():
                concurrency[key] = concurrency.get(key, 0) + load.inflight + load.held
        for gone in set(self._replicas) - set(listed):
            del self._replicas[gone]  # left the EndpointSlices: not missing, gone
        for key in concurrency.keys() | moved:
            snap.functions[key] = Signal(concurrency.get(key, 0), key in moved)
        return snap

    async def close(self) -> None:
        close = getattr(self.fetch, "close", None)
        if close is not None:
            await close()
