"""What the proxy's one periodic sweep (every 50 ms) ends: held requests
past the activation timeout, calls past their Function's deadline, pooled
connections idle too long, and a full pod's short backoff.

One timer for all of them rather than one per request keeps timers off the
hot path; deadlines fire up to one sweep late, which seconds-long timeouts
do not notice.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from ember_operator.gateway import faults
from ember_operator.gateway.call import Call
from ember_operator.gateway.endpoints import Backend


def expire_held(backends: Iterable[Backend], wall: float, hold_timeout: float) -> int:
    """Answer held requests that waited too long (504); returns the bytes
    they held. ``wall`` is ``time.perf_counter()``, the clock of ``started``."""
    freed = 0
    for backend in backends:
        held = backend.held
        while held and (held[0].finished or held[0].deadline <= wall):
            call: Call = held.popleft()
            freed += len(call.head)
            if backend.usable:
                call.fail(
                    faults.TIMEOUT,
                    f"no free slot on Function {backend.name} within {hold_timeout:g}s",
                )
            else:
                call.fail(
                    faults.ACTIVATION_TIMEOUT,
                    f"Function {backend.name} had no ready pod within {hold_timeout:g}s",
                )
    return freed


def time_out(call: Call) -> None:
    """The Function did not answer in time: 504, and its connection is
    dropped (it still carries the call; nothing else may use it). An answer
    that began and then stalled is cut off (its caller sees it end short)."""
    if call.responding:
        stall = call.proxy.stall_seconds
        call.abort(f"Function {call.backend.name}'s answer stalled for {stall:g}s")
        return
    timeout = call.backend.timeout_seconds
    call.free()
    conn, call.upstream = call.upstream, None
    if conn is not None:
        conn.waiter = None
        conn.abort()
    name = call.backend.name
    call.fail(faults.TIMEOUT, f"Function {name} did not answer within {timeout:g}s")


def close_stale(backend: Backend, now: float, idle_seconds: float) -> bool:
    """Close pooled connections idle too long and end pods' 429 backoff;
    True when a pod came back from its backoff (held requests may go)."""
    limit = now - idle_seconds
    backed_off = False
    for pod in backend.pods.values():
        if pod.backoff_until and pod.backoff_until <= now:
            pod.backoff_until = 0.0
            backed_off = True
        if pod.idle and pod.idle[0].last_used < limit:
            for conn in pod.idle:
                if conn.last_used < limit:
                    conn.close()
            pod.idle = [c for c in pod.idle if c.last_used >= limit]
    if backed_off:
        backend.refresh()
    return backed_off


def sweep(proxy: Any) -> None:
    """One pass (``proxy.Proxy``, its ``clock`` just advanced)."""
    now = proxy.clock
    backends = proxy.backends.values()
    proxy.held_bytes -= expire_held(backends, time.perf_counter(), proxy.hold_timeout)
    for backend in backends:
        if close_stale(backend, now, proxy.settings.upstream_idle_seconds) or (
            backend.held and backend.usable
        ):
            proxy.release(backend)
    for call in [c for c in proxy.inflight if c.deadline <= now]:
        time_out(call)
        proxy.release(call.backend)
