"""A Function's pods as the gateway balances over them, and the queue of
requests no pod can take yet.

Why the gateway counts in-flight calls itself: the runtime admits
``concurrency`` calls and answers 429 beyond its short queue, so a burst
sent straight at pods turns into errors. Here a pod never gets more than
the Function's ``concurrency`` from this gateway; the excess waits in one
bounded per-function queue (the same one that holds requests during a cold
start) and goes to the first pod that frees a slot or becomes ready. Among
pods with room, the least loaded is picked.

A pod is usable when its EndpointSlice says ready, or when the activator's
own probe of its ``/_/ready`` answered (before the kubelet noticed), and
it is neither terminating nor suspected (a refused connection: it goes
back to being probed). Pure data; ``proxy`` does the I/O.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any, NamedTuple

from ember_operator.kube.objects import Key
from ember_runtime import signing

Addr = tuple[str, int]


class EndpointState(NamedTuple):
    """One address of an EndpointSlice, as the slice reports it."""

    addr: Addr
    ready: bool
    terminating: bool


class Pod:
    __slots__ = (
        "addr",
        "address",
        "backoff_until",
        "gone",
        "idle",
        "inflight",
        "probed",
        "probing",
        "ready",
        "suspect",
        "warming",
    )

    def __init__(self, addr: Addr) -> None:
        self.addr = addr
        self.address = signing.pod_address(*addr)  # as a signature names it
        self.inflight = 0
        self.idle: list[Any] = []  # pooled keep-alive connections (upstream.UpstreamConn)
        self.ready = False  # the EndpointSlice says so
        self.probed = False  # our own /_/ready probe said so
        self.probing = False
        self.suspect = False  # a connection to it was refused: probe before use
        self.gone = False  # no longer listed (or terminating): finish, take nothing new
        self.backoff_until = 0.0  # it answered 429 (full): nothing new until then
        self.warming = 0  # connections being opened ahead of its readiness

    @property
    def usable(self) -> bool:
        return (
            (self.ready or self.probed)
            and not self.suspect
            and not self.gone
            and not self.backoff_until
        )

    @property
    def starting(self) -> bool:
        """Worth probing: listed, not gone, not usable yet."""
        return not self.gone and (self.suspect or not (self.ready or self.probed))

    def close_idle(self) -> None:
        idle, self.idle = self.idle, []
        for conn in idle:
            conn.close()


class Backend:
    """One Function: its pods, its limits and its held requests."""

    def __init__(
        self, key: Key, concurrency: int = 10, timeout_seconds: float = 30.0, queue_size: int = 100
    ) -> None:
        self.key = key
        self.name = f"{key[0]}/{key[1]}"
        self.concurrency = concurrency
        self.timeout_seconds = timeout_seconds
        self.queue_size = queue_size
        self.pods: dict[Addr, Pod] = {}
        self.usable: list[Pod] = []
        self.held: deque[Any] = deque()  # proxy.Call, oldest first
        self.inflight = 0
        self.requests_total = 0
        self.cold_call: Any = None  # the first request held while no pod could serve
        self.deleted = False
        self._slices: dict[str, list[EndpointState]] = {}

    # --- balancing --------------------------------------------------------

    def pick(self) -> Pod | None:
        """The usable pod with the fewest calls in flight, if one has room."""
        best: Pod | None = None
        cap = self.concurrency
        for candidate in self.usable:
            n = candidate.inflight
            if n < cap and (best is None or n < best.inflight):
                best = candidate
                if n == 0:
                    break
        return best

    @property
    def full(self) -> bool:
        return len(self.held) >= self.queue_size

    # --- endpoints (from the feed) ----------------------------------------

    def set_slice(self, name: str, endpoints: list[EndpointState]) -> None:
        self._slices[name] = endpoints
        self._merge()

    def remove_slice(self, name: str) -> None:
        if self._slices.pop(name, None) is not None:
            self._merge()

    def _merge(self) -> None:
        listed: dict[Addr, EndpointState] = {}
        for endpoints in self._slices.values():
            for ep in endpoints:
                # The same address in two slices (a move): ready wins.
                if ep.addr not in listed or ep.ready:
                    listed[ep.addr] = ep
        for addr, old in list(self.pods.items()):
            if addr not in listed:
                old.gone = True
                old.close_idle()
                del self.pods[addr]
        for addr, ep in listed.items():
            pod = self.pods.get(addr)
            if pod is None:
                pod = self.pods[addr] = Pod(addr)
            if pod.ready and not ep.ready:
                pod.probed = False  # it went unready: trust only a new probe
            pod.ready = ep.ready and not ep.terminating
            if ep.terminating:
                pod.gone = True
                pod.close_idle()
        self.refresh()

    def refresh(self) -> None:
        """Recompute the usable list after any pod's state changed."""
        self.usable = [p for p in self.pods.values() if p.usable]

    def starting(self) -> list[Pod]:
        return [p for p in self.pods.values() if p.starting and not p.probing]

    def close(self) -> None:
        self.deleted = True
        for pod in self.pods.values():
            pod.gone = True
            pod.close_idle()
        self.pods.clear()
        self.usable = []


def backend_stats(backends: Iterable[Backend]) -> dict[str, Any]:
    """What ``/_/stats`` says, the document the autoscaler sums across gateway
    replicas: ``{"functions": {"ns/name": {inflight, held, requests_total}}}``."""
    return {
        "functions": {
            b.name: {
                "inflight": b.inflight,
                "held": len(b.held),
                "requests_total": b.requests_total,
            }
            for b in backends
        }
    }
