"""The data plane when pods come and go: the autoscaler idles a Function to
zero and its next call wakes it; a steady prober sees no error while its
Function is sent to zero again and again; a function pod and a gateway
replica deleted (gracefully) under load fail no request.

Ember is installed from its chart into this module's own namespace (the
``ns`` and ``gateway`` fixtures of test_gateway.py, imported: each module
that imports them gets its own release).

Calls go to the gateway Service's ClusterIP on a new connection each, so
kube-proxy spreads them over both gateway replicas, as it would spread
independent clients.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections import Counter
from typing import Any

import httpx
import pytest
from kubernetes import client

from tests.e2e import test_gateway
from tests.e2e.test_gateway import function_status, make_function, ready_at_zero
from tests.kube_helpers import eventually

pytestmark = pytest.mark.e2e

# The module-scoped namespace and release fixtures, this module's own instances.
ns = test_gateway.ns
gateway = test_gateway.gateway

GATEWAY_SELECTOR = "app.kubernetes.io/component=gateway"


def gateway_pods(k8s: client.ApiClient, ns: str) -> list[Any]:
    pods = client.CoreV1Api(k8s).list_namespaced_pod(ns, label_selector=GATEWAY_SELECTOR).items
    return [p for p in pods if p.metadata.deletion_timestamp is None and p.status.pod_ip]


def cold_start_count(k8s: client.ApiClient, ns: str, fn: str) -> float:
    """``ember_cold_start_seconds_count`` of ``fn`` summed over every gateway
    replica (each keeps its own histogram), read at each pod's admin port."""
    total = 0.0
    pattern = re.compile(
        r'ember_cold_start_seconds_count\{[^}]*function="' + re.escape(fn) + r'"[^}]*\} (\S+)'
    )
    for pod in gateway_pods(k8s, ns):
        text = httpx.get(f"http://{pod.status.pod_ip}:9090/metrics", timeout=5).text
        m = pattern.search(text)
        total += float(m.group(1)) if m else 0.0
    return total


def replicas(k8s: client.ApiClient, ns: str, name: str) -> int:
    return int(client.AppsV1Api(k8s).read_namespaced_deployment(name, ns).spec.replicas or 0)


def is_ready(pod: Any) -> bool:
    conds = (pod.status.conditions if pod.status else None) or []
    return any(c.type == "Ready" and c.status == "True" for c in conds)


def function_pods(k8s: client.ApiClient, ns: str, name: str) -> list[Any]:
    return list(
        client.CoreV1Api(k8s)
        .list_namespaced_pod(ns, label_selector=f"ember.dev/function={name}")
        .items
    )


def call(url: str, **kw: Any) -> httpx.Response:
    """One call on a connection of its own (kube-proxy picks the replica)."""
    with httpx.Client(timeout=kw.pop("timeout", 90)) as c:
        return c.post(url, json={"t": time.time()}, **kw)


def test_idle_function_is_scaled_to_zero_by_the_autoscaler_and_wakes_on_its_next_call(
    k8s: client.ApiClient, ns: str, gateway: dict[str, str]
) -> None:
    name = "idler"
    make_function(k8s, ns, name, scale={"min": 0, "max": 2, "idleSeconds": 5})
    ready_at_zero(k8s, ns, name)
    url = f"{gateway['call']}/fn/{ns}/{name}"
    assert call(url).status_code == 200
    assert replicas(k8s, ns, name) == 1

    # Idle: the autoscaler (2 s tick) brings it to zero after idleSeconds.
    t0 = time.monotonic()

    def at_zero() -> dict[str, Any] | None:
        auto = function_status(k8s, ns, name).get("autoscaler") or {}
        if auto.get("desiredReplicas") == 0 and replicas(k8s, ns, name) == 0:
            return auto
        return None

    auto = eventually(at_zero, timeout=60, interval=0.5, what="the autoscaler scaling it to zero")
    idle_for = time.monotonic() - t0
    assert auto["reason"] == "Idle", auto
    assert auto.get("scaleDowns", 0) >= 1 and auto.get("lastScaleTime"), auto
    eventually(lambda: not function_pods(k8s, ns, name), timeout=60, what="its last pod gone")
    print(f"idle to zero in {idle_for:.1f}s (idleSeconds 5)")

    before = cold_start_count(k8s, ns, f"{ns}/{name}")
    t0 = time.monotonic()
    r = call(url)
    cold = time.monotonic() - t0
    assert r.status_code == 200, r.text
    assert r.json()["fn"] == f"{ns}/{name}"
    print(f"cold start after idling: {cold * 1000:.0f} ms")
    eventually(
        lambda: cold_start_count(k8s, ns, f"{ns}/{name}") >= before + 1,
        timeout=10,
        what="the cold start counted in a gateway's ember_cold_start_seconds",
    )


class Prober:
    """Calls ``url`` once a second on a fresh connection; keeps every outcome."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.outcomes: list[tuple[float, int | str, float]] = []  # (at, status|error, seconds)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        next_at = time.monotonic()
        while not self.stop.is_set():
            t0 = time.monotonic()
            try:
                outcome: int | str = call(self.url, timeout=70).status_code
            except httpx.HTTPError as e:
                outcome = repr(e)
            self.outcomes.append((t0, outcome, time.monotonic() - t0))
            next_at = max(next_at + 1.0, time.monotonic())
            self.stop.wait(max(0.0, next_at - time.monotonic()))

    def __enter__(self) -> Prober:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        self.thread.join(80)


def test_a_prober_at_one_call_a_second_sees_no_error_across_five_scale_to_zero_cycles(
    k8s: client.ApiClient, ns: str, gateway: dict[str, str]
) -> None:
    """Each cycle writes ``scale`` 0 (the autoscaler's own write) while the
    prober keeps calling, at a different phase of its second each time: the
    pod leaves while calls arrive, the next call finds no pod (or a
    terminating one) and wakes the Function again. The autoscaler cannot
    idle a Function that is called every second (any call within a 2 s
    tick counts as activity, and idleSeconds is whole seconds), so the
    cycles are driven through the scale subresource; the autoscaler's own
    path to zero is the test above."""
    name = "probed"
    make_function(k8s, ns, name, scale={"min": 0, "max": 1, "idleSeconds": 600})
    ready_at_zero(k8s, ns, name)
    apps = client.AppsV1Api(k8s)
    url = f"{gateway['call']}/fn/{ns}/{name}"
    before = cold_start_count(k8s, ns, f"{ns}/{name}")
    t_start = time.monotonic()
    woken = 0
    with Prober(url) as prober:
        eventually(lambda: replicas(k8s, ns, name) == 1, timeout=60, what="the first wake")
        for cycle in range(5):
            old = {p.metadata.name for p in function_pods(k8s, ns, name)}
            # The next prober call is at most 1 s away: land the scale-down
            # at a different point of that second each cycle.
            last = prober.outcomes[-1][0] if prober.outcomes else time.monotonic()
            time.sleep(max(0.0, last + 1.0 + 0.2 * cycle - time.monotonic()) % 1.0)
            apps.patch_namespaced_deployment_scale(name, ns, {"spec": {"replicas": 0}})

            def cycled(old: set[str] = old) -> bool:
                pods = function_pods(k8s, ns, name)
                names = {p.metadata.name for p in pods}
                ready = [p for p in pods if p.metadata.deletion_timestamp is None and is_ready(p)]
                return not (names & old) and bool(ready)

            eventually(
                cycled, timeout=60, interval=0.2, what=f"cycle {cycle}: old pod gone, new one up"
            )
            woken += 1
            assert time.monotonic() - t_start < 180, "five cycles took over 3 minutes"
        time.sleep(2)  # a few calls against the last new pod
    outcomes = Counter(o for _, o, _ in prober.outcomes)
    slowest = max(s for _, _, s in prober.outcomes)
    print(
        f"prober: {len(prober.outcomes)} calls over {woken} cycles in "
        f"{time.monotonic() - t_start:.0f}s, {dict(outcomes)}, slowest {slowest * 1000:.0f} ms"
    )
    assert woken == 5
    assert set(outcomes) == {200}, [o for o in prober.outcomes if o[1] != 200]
    # Only the gateway wakes a Function at zero, and only for a held call:
    # each cycle's new pod means one cold start (the first wake is one more).
    cold = cold_start_count(k8s, ns, f"{ns}/{name}") - before
    assert cold >= 5, f"{cold} cold starts counted over 5 cycles"


def load(url: str, total: int, workers: int, during: Any) -> tuple[Counter[Any], list[Any]]:
    """``total`` calls from ``workers`` concurrent callers, each on a new
    connection; ``during()`` runs in a thread once the load is flowing."""
    codes: Counter[Any] = Counter()
    failures: list[Any] = []
    done = 0

    async def run() -> None:
        nonlocal done
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(total):
            queue.put_nowait(i)
        limits = httpx.Limits(max_keepalive_connections=0, max_connections=workers)

        async def worker(c: httpx.AsyncClient) -> None:
            nonlocal done
            while True:
                try:
                    i = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                try:
                    r = await c.post(url, json={"i": i}, headers={"connection": "close"})
                    codes[r.status_code] += 1
                    if r.status_code != 200:
                        failures.append((i, r.status_code, r.text[:300]))
                except httpx.HTTPError as e:
                    codes[type(e).__name__] += 1
                    failures.append((i, repr(e)))
                done += 1

        async with httpx.AsyncClient(timeout=60, limits=limits) as c:
            tasks = [asyncio.create_task(worker(c)) for _ in range(workers)]
            while done < total // 5:  # noqa: ASYNC110  (a counter, polled)
                await asyncio.sleep(0.05)
            disruption = asyncio.create_task(asyncio.to_thread(during))
            await asyncio.gather(*tasks)
            await disruption

    asyncio.run(run())
    return codes, failures


def test_a_function_pod_deleted_with_calls_in_flight_fails_none(
    k8s: client.ApiClient, ns: str, gateway: dict[str, str]
) -> None:
    name = "steady"
    make_function(k8s, ns, name, concurrency=4, scale={"min": 2, "max": 2})
    eventually(
        lambda: sum(1 for p in function_pods(k8s, ns, name) if is_ready(p)) == 2,
        timeout=120,
        what="two ready pods",
    )
    url = f"{gateway['call']}/fn/{ns}/{name}?s=0.3"
    core = client.CoreV1Api(k8s)
    deleted: list[str] = []

    def delete_one() -> None:
        pod = function_pods(k8s, ns, name)[0]
        deleted.append(pod.metadata.name)
        core.delete_namespaced_pod(pod.metadata.name, ns)  # graceful (the pod's own period)

    codes, failures = load(url, total=300, workers=6, during=delete_one)
    print(f"pod {deleted} deleted under load: {dict(codes)}")
    assert deleted
    assert codes == Counter({200: 300}), failures[:10]


def test_a_gateway_replica_deleted_under_load_fails_none(
    k8s: client.ApiClient, ns: str, gateway: dict[str, str]
) -> None:
    name = "through"
    make_function(k8s, ns, name, concurrency=8, scale={"min": 1, "max": 1})
    eventually(
        lambda: any(is_ready(p) for p in function_pods(k8s, ns, name)),
        timeout=120,
        what="a ready pod",
    )
    assert len(gateway_pods(k8s, ns)) == 2
    url = f"{gateway['call']}/fn/{ns}/{name}?s=0.2"
    core = client.CoreV1Api(k8s)
    deleted: list[str] = []

    def delete_one() -> None:
        pod = gateway_pods(k8s, ns)[0]
        deleted.append(pod.metadata.name)
        core.delete_namespaced_pod(pod.metadata.name, ns)  # graceful: the gateway drains

    codes, failures = load(url, total=400, workers=6, during=delete_one)
    print(f"gateway {deleted} deleted under load: {dict(codes)}")
    assert deleted
    assert codes == Counter({200: 400}), failures[:10]
    # The Deployment replaces it; the next module's tests are not this one's.
    eventually(lambda: len(gateway_pods(k8s, ns)) == 2, timeout=120, what="two gateways again")
