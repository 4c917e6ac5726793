"""Scale from zero: wake a Function whose requests are held, and find the
moment a new pod can serve.

When a request is held and no pod of its Function is usable, the activator
sets the Deployment's ``scale`` to at least 1 at once (it does not wait
for the autoscaler's tick), and while requests wait it probes the
``/_/ready`` of every pod the EndpointSlices list but do not yet call
ready, every ``probe_interval`` (25 ms by default), as Knative's activator
does: the kubelet's own probe period would add up to a second to every
cold start. The first 200 makes the pod usable and releases the held
requests (``on_usable``). A 429 counts too: the pod is up, only full.

A starting pod already listens (its runtime answers ``/_/ready`` 503
"starting" while it loads), so once a probe gets any answer the activator
opens, alongside the probing, as many connections as the held requests
will need at once (at most the Function's ``concurrency``: the rest wait
for a slot anyway) into the pod's pool. Opening a thousand connections
takes tens of milliseconds; writing a thousand requests into open ones
takes a few, so the release after the first good probe is only the writes.

Each Function gets its own small task while it has held requests, so one
Function's cold start costs another's traffic nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol

from ember_operator.gateway.endpoints import Backend, Pod
from ember_operator.gateway.upstream import UpstreamConn, connect
from ember_operator.kube.client import MERGE_PATCH, ApiError, Kube
from ember_operator.kube.resources import path
from ember_operator.render.names import deployment_name
from ember_runtime import logs, pod

READY_PATH = pod.READY_PATH.encode()
RESCALE_SECONDS = 1.0  # while nothing is usable, check the scale again this often
PROBE_SECONDS = 1.0
_PROBE = b"GET %s HTTP/1.1\r\nhost: ember-gateway\r\nconnection: close\r\n\r\n"


class Scaler(Protocol):
    async def ensure_running(self, namespace: str, function: str) -> None: ...


class NoScaler:
    """For a static feed: nothing to scale."""

    async def ensure_running(self, namespace: str, function: str) -> None:
        return None


class KubeScaler:
    """Writes only the Deployment's ``scale`` subresource, and only up from 0,
    with the read's resourceVersion as a precondition, so it never lowers
    a count the autoscaler raised meanwhile."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube

    async def ensure_running(self, namespace: str, function: str) -> None:
        url = path("Deployment", namespace, deployment_name(function), "scale")
        for _ in range(3):
            scale = await self.kube.request("GET", url)
            if int((scale.get("spec") or {}).get("replicas") or 0) >= 1:
                return
            version = (scale.get("metadata") or {}).get("resourceVersion")
            body = {"metadata": {"resourceVersion": version}, "spec": {"replicas": 1}}
            try:
                await self.kube.request("PATCH", url, body=body, content_type=MERGE_PATCH)
            except ApiError as e:
                if e.status == 409:
                    continue  # someone else wrote the scale: read it again
                raise
            logs.emit("info", "scaled from zero", function=f"{namespace}/{function}")
            return


class Activator:
    def __init__(
        self, scaler: Scaler, probe_interval: float = 0.025, buffer_limit: int = 64 * 1024
    ) -> None:
        self.scaler = scaler
        self.probe_interval = probe_interval
        self.buffer_limit = buffer_limit  # for the connections it warms (upstream.UpstreamConn)
        self.on_usable: Callable[[Backend], None] = lambda backend: None
        # For benchmarks and tests: called with (backend, pod, time.perf_counter())
        # when a probe makes a pod usable.
        self.on_probe_ok: Callable[[Backend, Pod, float], None] | None = None
        self.tasks: dict[tuple[str, str], asyncio.Task[None]] = {}
        self.warming: set[asyncio.Task[None]] = set()
        self.activations = 0

    def wake(self, backend: Backend) -> None:
        """Requests are held for ``backend``: make sure someone works on it."""
        if backend.key not in self.tasks and not backend.deleted:
            task = asyncio.get_running_loop().create_task(self._run(backend))
            self.tasks[backend.key] = task
            task.add_done_callback(lambda _t: self.tasks.pop(backend.key, None))

    async def _run(self, backend: Backend) -> None:
        loop = asyncio.get_running_loop()
        scaled_at = -RESCALE_SECONDS
        probes: set[asyncio.Task[None]] = set()
        while backend.held and not backend.deleted:
            now = loop.time()
            if not backend.usable and now - scaled_at >= RESCALE_SECONDS:
                scaled_at = now
                self.activations += 1
                scaling = loop.create_task(self._scale(backend))
                probes.add(scaling)
                scaling.add_done_callback(probes.discard)
            for p in backend.starting():
                p.probing = True
                task = loop.create_task(self._probe(backend, p))
                probes.add(task)
                task.add_done_callback(probes.discard)
            await asyncio.sleep(self.probe_interval)

    async def _scale(self, backend: Backend) -> None:
        ns, name = backend.key
        try:
            await self.scaler.ensure_running(ns, name)
        except Exception as e:  # the API server, RBAC: said, and tried again
            logs.emit("warning", "could not scale from zero", function=backend.name, error=repr(e))

    async def _probe(self, backend: Backend, p: Pod) -> None:
        try:
            status = await probe_ready(p.addr[0], p.addr[1], READY_PATH)
        finally:
            p.probing = False
        if status and status not in (200, 429) and not p.gone:
            # Listening, not ready yet: open what the release will need.
            self._warm(backend, p)
        if status in (200, 429) and not p.gone:
            first = not backend.usable
            p.probed = True
            p.suspect = False
            backend.refresh()
            if self.on_probe_ok is not None:
                self.on_probe_ok(backend, p, time.perf_counter())
            if first:
                logs.emit(
                    "info",
                    "pod ready (probed)",
                    function=backend.name,
                    pod=f"{p.addr[0]}:{p.addr[1]}",
                )
            self.on_usable(backend)

    def _warm(self, backend: Backend, p: Pod) -> None:
        want = min(len(backend.held), backend.concurrency)
        n = want - len(p.idle) - p.inflight - p.warming
        if n > 0:
            p.warming += n
            task = asyncio.get_running_loop().create_task(self._open(p, n))
            self.warming.add(task)
            task.add_done_callback(self.warming.discard)

    async def _open(self, p: Pod, n: int) -> None:
        try:
            conns = await warm(p.addr[0], p.addr[1], self.buffer_limit, n)
        finally:
            p.warming -= n
        now = asyncio.get_running_loop().time()
        for conn in conns:
            if p.gone or not conn.alive:
                conn.close()
            else:
                conn.last_used = now
                p.idle.append(conn)

    async def stop(self) -> None:
        for task in list(self.warming):
            task.cancel()
        for task in list(self.tasks.values()):
            task.cancel()


async def probe_ready(host: str, port: int, path: bytes) -> int:
    """The status of ``GET path`` on a fresh connection, 0 if none came."""
    try:
        async with asyncio.timeout(PROBE_SECONDS):
            reader, writer = await asyncio.open_connection(host, port)
            try:
                writer.write(_PROBE % path)
                line = await reader.readline()
            finally:
                writer.close()
    except (OSError, TimeoutError):
        return 0
    parts = line.split(b" ", 2)
    return int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else 0


async def warm(host: str, port: int, buffer_limit: int, n: int) -> list[UpstreamConn]:
    """Open up to ``n`` connections at once (fewer if some fail), ready to be
    pooled: a starting pod already listens, so its connections can be made
    while it is probed, leaving only the writes for the moment it is ready."""
    results = await asyncio.gather(
        *(connect(host, port, buffer_limit) for _ in range(n)), return_exceptions=True
    )
    return [c for c in results if isinstance(c, UpstreamConn)]
