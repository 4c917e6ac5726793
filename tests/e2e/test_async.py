"""The async path as users meet it, on the local cluster: Ember installed by
its chart with the bundled Redis (append-only, on a PersistentVolume) and two
dispatcher replicas; calls go through the gateway to real function pods.

- 1,000 async calls (1 % poison) while dispatcher and function pods are
  killed: none lost, each succeeded or dead-lettered, one invocation per
  Idempotency-Key however often it is submitted;
- poison calls: dead letters == poison, retries on the configured backoff
  (within 20 %), and a redrive after the fix succeeds;
- a per-second cron Trigger across a restart of every dispatcher: each
  tick ran once, none skipped;
- a queue Trigger against a one-at-a-time slow function: nothing lost,
  never two at once, no retry spent on back-pressure.

One release for the module; each test makes its own Functions.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import re
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import redis
import yaml
from kubernetes import client

from tests.conftest import REPO, on_kind
from tests.e2e.async_helpers import (
    Submission,
    component_pods,
    create_function,
    create_trigger,
    delete_trigger,
    exec_in,
    force_delete,
    function_pods,
    function_slot,
    pod_log_lines,
    ready_pods,
    release_redis,
    result_json,
    set_function_source,
    sigkill,
    submit,
    trigger_slot,
    wait_dispatchers_ready,
    wait_final,
    wait_function_pods_ready,
    wait_trigger_ready,
)
from tests.e2e.test_gateway import TAG, helm
from tests.kube_helpers import (
    api_client,
    create_namespace,
    delete_namespace,
    eventually,
    unique_name,
)

pytestmark = pytest.mark.e2e

# The async retry policy the release is installed with (dispatcher.async).
MAX_RETRIES = 3
BACKOFF_INITIAL = 2.0
BACKOFF_MAX = 60.0
VISIBILITY_TIMEOUT = 5.0


def nominal_backoff(retry: int) -> float:
    return min(BACKOFF_MAX, BACKOFF_INITIAL * 2 ** (retry - 1))


@pytest.fixture(scope="module")
def ns(kubeconfig: str) -> Iterator[str]:
    api = api_client(kubeconfig)
    name = create_namespace(api, "e2e-async")
    yield name
    delete_namespace(api, name)


@pytest.fixture(scope="module")
def release(kubeconfig: str, ns: str) -> Iterator[dict[str, Any]]:
    """The release; returns its name, the gateway's base URL and a Redis client."""
    if on_kind():
        pytest.skip("these tests reach ClusterIPs and kill pod processes from the node")
    import subprocess

    rel = unique_name("async")
    claim = f"{rel}-ember-redis"
    volume = [str(REPO / "hack/redis/local-volume.sh"), ns, claim]
    subprocess.run(volume, check=True, timeout=60)
    helm(
        kubeconfig, "install", rel, str(REPO / "charts/ember"), "--namespace", ns,
        "--set", f"operator.watchNamespaces={{{ns}}}",
        "--set", f"operator.image.tag={TAG}", "--set", f"runtime.image.tag={TAG}",
        "--set", f"redis.image.tag={TAG}", "--set", "redis.persistence.storageClass=-",
        "--set", f"dispatcher.async.maxRetries={MAX_RETRIES}",
        "--set", f"dispatcher.async.backoff.initialSeconds={BACKOFF_INITIAL:g}",
        "--set", f"dispatcher.async.backoff.maxSeconds={BACKOFF_MAX:g}",
        "--set", f"dispatcher.async.visibilityTimeoutSeconds={VISIBILITY_TIMEOUT:g}",
        "--wait", "--timeout", "3m",
    )  # fmt: skip
    k8s = api_client(kubeconfig)
    svc = client.CoreV1Api(k8s).read_namespaced_service(f"{rel}-ember-gateway", ns)
    gateway = f"http://{svc.spec.cluster_ip}:{svc.spec.ports[0].port}"
    eventually(
        lambda: httpx.get(gateway + "/fn/none/none", timeout=5).status_code == 404,
        timeout=60,
        what="the gateway answering 404 for an unknown route",
    )
    r = release_redis(k8s, ns, rel)
    yield {"name": rel, "gateway": gateway, "redis": r}
    r.close()
    helm(kubeconfig, "uninstall", rel, "--namespace", ns, "--wait")
    subprocess.run([volume[0], "--delete", ns, claim], check=False, timeout=60)


def test_the_bundled_redis_is_persistent_and_keeps_its_password_on_upgrade(
    kubeconfig: str, k8s: client.ApiClient, ns: str, release: dict[str, Any]
) -> None:
    r: redis.Redis = release["redis"]
    assert r.config_get("appendonly") == {"appendonly": "yes"}
    assert r.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
    claim = client.CoreV1Api(k8s).read_namespaced_persistent_volume_claim(
        f"{release['name']}-ember-redis", ns
    )
    assert claim.status.phase == "Bound"
    live = client.CoreV1Api(k8s).read_namespaced_secret(f"{release['name']}-ember-redis", ns)
    # What an upgrade would apply, rendered against the cluster (lookup works there).
    out = helm(
        kubeconfig, "upgrade", release["name"], str(REPO / "charts/ember"), "--namespace", ns,
        "--reuse-values", "--dry-run=server",
    )  # fmt: skip
    manifest = out.split("MANIFEST:", 1)[1].split("NOTES:", 1)[0]
    (secret,) = [
        d
        for d in yaml.safe_load_all(manifest)
        if d and d["kind"] == "Secret" and d["metadata"]["name"].endswith("-redis")
    ]
    assert secret["data"]["password"] == live.data["password"]
    # Without a class named, the chart looks for the cluster's default one and,
    # finding none (this cluster has no provisioner), uses an emptyDir rather
    # than a claim that would stay Pending.
    classes = client.StorageV1Api(k8s).list_storage_class().items
    has_default = any(
        (c.metadata.annotations or {}).get("storageclass.kubernetes.io/is-default-class") == "true"
        for c in classes
    )
    out = helm(
        kubeconfig, "template", "probe", str(REPO / "charts/ember"), "--namespace", ns,
        "--dry-run=server", "--show-only", "templates/redis.yaml",
    )  # fmt: skip
    (deployment,) = [d for d in yaml.safe_load_all(out) if d and d["kind"] == "Deployment"]
    (data,) = [v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == "data"]
    assert ("persistentVolumeClaim" in data) == has_default, data
    # The Trigger kinds the dispatcher serves are reported as such.
    operator = component_pods(k8s, ns, "operator")[0]
    env = {e.name: e.value for e in operator.spec.containers[0].env}
    assert env["EMBER_DISPATCHER_ENABLED"] == "true"


CHAOS = """\
import time
def handle(event, context):
    if event.get("poison"):
        raise RuntimeError("poison message")
    time.sleep(0.1)
    return {"i": event["i"], "attempt": context.headers.get("x-ember-attempt")}
"""


def test_a_thousand_calls_survive_killed_dispatchers_and_function_pods(
    k8s: client.ApiClient, ns: str, release: dict[str, Any]
) -> None:
    fn = "chaos"
    create_function(k8s, ns, fn, CHAOS, concurrency=10, scale={"min": 1, "max": 3, "target": 5})
    wait_function_pods_ready(k8s, ns, fn)
    url = f"{release['gateway']}/async/{ns}/{fn}"
    n, poison_every = 1000, 100
    subs = [
        Submission(
            key=f"chaos-{i}",
            body={"i": i, "poison": i % poison_every == 37},
        )
        for i in range(n)
    ]
    poison_keys = {s.key for s in subs if s.body["poison"]}
    kills: list[str] = []

    async def chaos() -> None:
        """Kill dispatchers and function pods, both ways, while calls run."""
        plan = [
            (3.0, "dispatcher", "sigkill-one"),
            (6.0, "function", "sigkill-all"),
            (9.0, "dispatcher", "delete-one"),
            (12.0, "function", "delete-all"),
            (15.0, "dispatcher", "sigkill-all"),
            (18.0, "function", "sigkill-all"),
        ]
        t0 = time.monotonic()
        for at, what, how in plan:
            await asyncio.sleep(max(0.0, t0 + at - time.monotonic()))
            pods = (
                component_pods(k8s, ns, "dispatcher")
                if what == "dispatcher"
                else function_pods(k8s, ns, fn)
            )
            pods = ready_pods(pods)
            if not pods:
                kills.append(f"{at:.0f}s {what}: none ready, skipped")
                continue
            victims = pods[:1] if how.endswith("one") else pods
            for pod in victims:
                if how.startswith("sigkill"):
                    assert sigkill(pod) >= 1, f"no process of {pod.metadata.name} found"
                else:
                    force_delete(k8s, pod)
            kills.append(f"{at:.0f}s {how} {what} x{len(victims)}")

    async def run() -> None:
        limits = httpx.Limits(max_connections=32)
        async with httpx.AsyncClient(timeout=30, limits=limits) as c:
            # Every call is submitted twice with its key: first in order at
            # ~50/s, again at a random later moment (while pods die).
            sem = asyncio.Semaphore(24)

            async def paced(s: Submission, at: float) -> None:
                await asyncio.sleep(at)
                async with sem:
                    await submit(c, url, s)

            firsts = [paced(s, i / 50) for i, s in enumerate(subs)]
            seconds = [paced(s, i / 50 + random.uniform(0.5, 6.0)) for i, s in enumerate(subs)]
            await asyncio.gather(chaos(), *firsts, *seconds)
            records = await wait_final(c, url, {s.ids[0] for s in subs}, within=180)
            result["records"] = records

    result: dict[str, Any] = {}
    t0 = time.monotonic()
    asyncio.run(run())
    elapsed = time.monotonic() - t0
    records: dict[str, dict[str, Any]] = result["records"]
    print(f"kills: {kills}")

    # One invocation per key, whichever submission and however often.
    for s in subs:
        assert len(s.ids) == 2 and s.ids[0] == s.ids[1], (s.key, s.ids, s.codes)
    ids = {s.ids[0] for s in subs}
    assert len(ids) == n
    created = sum(s.codes.count(202) for s in subs)
    repeated = sum(s.codes.count(200) for s in subs)
    assert created == n and repeated == n, (created, repeated)

    # None lost: every one final, as it should be.
    by_status = Counter(rec["status"] for rec in records.values())
    assert by_status == {"succeeded": n - len(poison_keys), "dead-lettered": len(poison_keys)}
    key_of = {s.ids[0]: s for s in subs}
    dead = {key_of[i].key for i, rec in records.items() if rec["status"] == "dead-lettered"}
    assert dead == poison_keys
    for inv, rec in records.items():
        if rec["status"] == "succeeded":
            assert result_json(rec)["i"] == key_of[inv].body["i"]

    # Redis agrees: exactly n records for the Function (no second invocation
    # from a repeated submission), the dead letters are the poison ones,
    # and nothing is left in a stream, pending, or waiting for a retry.
    r: redis.Redis = release["redis"]
    slot = function_slot(ns, fn)
    assert sum(1 for _ in r.scan_iter(f"{slot}:inv:*", count=1000)) == n
    dlq = r.xrange(f"{slot}:dlq")
    assert sorted(f[b"id"].decode() for _, f in dlq) == sorted(
        s.ids[0] for s in subs if s.key in poison_keys
    )
    assert all(int(f[b"attempts"]) == MAX_RETRIES + 1 for _, f in dlq)
    for stream in (f"{slot}:async", f"{slot}:retry"):
        assert r.xlen(stream) == 0, stream
        assert r.xpending(stream, "ember-dispatch")["pending"] == 0, stream
    assert r.zcard(f"{slot}:delayed") == 0

    attempts = Counter(rec["attempts"] for rec in records.values() if rec["status"] == "succeeded")
    print(
        f"{n} calls ({len(poison_keys)} poison) submitted twice each, all final in "
        f"{elapsed:.0f}s; attempts of the succeeded ones: {dict(sorted(attempts.items()))}"
    )
    assert len([k for k in kills if "skipped" not in k]) >= 5, kills


FLAKY_V1 = """\
import json, time
def handle(event, context):
    print(json.dumps({"e2e": "attempt", "id": context.headers.get("x-ember-invocation-id"),
                      "attempt": int(context.headers.get("x-ember-attempt", "0")),
                      "t": time.time()}), flush=True)
    if event.get("poison"):
        raise RuntimeError("poison message")
    return {"i": event["i"], "version": 1}
"""
FLAKY_V2 = FLAKY_V1.replace('raise RuntimeError("poison message")', "pass").replace(
    '"version": 1', '"version": 2'
)


def test_poison_calls_are_dead_lettered_on_schedule_and_succeed_after_a_fix_and_redrive(
    k8s: client.ApiClient, ns: str, release: dict[str, Any]
) -> None:
    fn = "flaky"
    wait_dispatchers_ready(k8s, ns)  # an earlier test may have killed them
    create_function(k8s, ns, fn, FLAKY_V1, concurrency=10, scale={"min": 1, "max": 1})
    wait_function_pods_ready(k8s, ns, fn)
    url = f"{release['gateway']}/async/{ns}/{fn}"
    subs = [Submission(f"flaky-{i}", {"i": i, "poison": i in (50, 150)}) for i in range(200)]

    async def first_round() -> dict[str, dict[str, Any]]:
        async with httpx.AsyncClient(timeout=30) as c:
            sem = asyncio.Semaphore(16)

            async def one(s: Submission) -> None:
                async with sem:
                    await submit(c, url, s)

            await asyncio.gather(*(one(s) for s in subs))
            return await wait_final(c, url, [s.ids[0] for s in subs], within=90)

    records = asyncio.run(first_round())
    poison = {s.ids[0] for s in subs if s.body["poison"]}
    assert Counter(r["status"] for r in records.values()) == {"succeeded": 198, "dead-lettered": 2}
    assert {i for i, r in records.items() if r["status"] == "dead-lettered"} == poison

    r: redis.Redis = release["redis"]
    slot = function_slot(ns, fn)
    dlq = r.xrange(f"{slot}:dlq")
    assert sorted(f[b"id"].decode() for _, f in dlq) == sorted(poison)
    for _, f in dlq:
        assert int(f[b"attempts"]) == MAX_RETRIES + 1
        assert "HTTP 500" in f[b"error"].decode()

    # The backoff, as the function saw its attempts (one pod, its log).
    (pod,) = ready_pods(function_pods(k8s, ns, fn))
    seen: dict[str, dict[int, float]] = {}
    # Workers share the container's stdout: lines may run together.
    for found in re.finditer(r'\{"e2e": "attempt"[^}]*\}', "\n".join(pod_log_lines(k8s, pod))):
        a = json.loads(found.group(0))
        if a["id"] in poison:
            seen.setdefault(a["id"], {})[a["attempt"]] = a["t"]
    report = []
    for inv in poison:
        times = seen[inv]
        assert sorted(times) == list(range(1, MAX_RETRIES + 2)), times
        for retry in range(1, MAX_RETRIES + 1):
            gap = times[retry + 1] - times[retry]
            want = nominal_backoff(retry)
            report.append(f"{gap:.2f}/{want:g}")
            assert 0.8 * want <= gap <= 1.2 * want, (inv, retry, gap, want)
    print(f"poison retries, seen/configured seconds: {report}")

    # The fix, rolled out: poison calls now succeed on every pod that answers.
    generation = set_function_source(k8s, ns, fn, FLAKY_V2)

    def rolled_out() -> bool:
        obj = client.CustomObjectsApi(k8s).get_namespaced_custom_object(
            "ember.dev", "v1alpha1", ns, "functions", fn
        )
        if (obj.get("status") or {}).get("observedGeneration") != generation:
            return False
        pods = function_pods(k8s, ns, fn)
        return len(pods) == 1 and len(ready_pods(pods)) == 1

    eventually(rolled_out, timeout=120, what="the fixed Function rolled out")
    sync = f"{release['gateway']}/fn/{ns}/{fn}"
    eventually(
        lambda: all(
            httpx.post(sync, json={"i": -1, "poison": True}, timeout=30).json().get("version") == 2
            for _ in range(3)
        ),
        timeout=60,
        what="the fixed code answering",
    )

    # Redrive, the documented way: a command in a dispatcher pod.
    dispatcher = ready_pods(component_pods(k8s, ns, "dispatcher"))[0]
    out = exec_in(
        k8s, dispatcher, ["python3", "-m", "ember_operator.dispatch", "redrive", f"{ns}/{fn}"]
    )
    assert f"2 dead letter(s) of Function {ns}/{fn} queued again" in out, out

    async def after_redrive() -> dict[str, dict[str, Any]]:
        async with httpx.AsyncClient(timeout=30) as c:
            return await wait_final(c, url, poison, within=60)

    redriven = asyncio.run(after_redrive())
    for rec in redriven.values():
        assert rec["status"] == "succeeded", rec
        assert result_json(rec)["version"] == 2
    assert r.xlen(f"{slot}:dlq") == 0


TICKER = """\
from collections import Counter
runs = Counter()
async def handle(event, context):
    if event.get("stats"):
        return dict(runs)
    runs[context.headers.get("idempotency-key", "none")] += 1
    return {"ok": True}
"""


def restart_count(pod: client.V1Pod) -> int:
    return sum(c.restart_count for c in (pod.status.container_statuses or []))


def tick_of(key: str) -> int:
    iso = key.rsplit("/", 1)[1]
    return int(datetime.strptime(iso, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp())


def test_a_cron_trigger_fires_each_tick_once_across_a_restart_of_every_dispatcher(
    k8s: client.ApiClient, ns: str, release: dict[str, Any]
) -> None:
    fn, trigger, every = "ticker", "every-2s", 2
    wait_dispatchers_ready(k8s, ns)  # an earlier test may have killed them
    create_function(k8s, ns, fn, TICKER, scale={"min": 1, "max": 1})
    wait_function_pods_ready(k8s, ns, fn)
    create_trigger(
        k8s, ns, trigger,
        {"function": fn, "schedule": {"cron": f"*/{every} * * * * *", "payload": {"tick": 1}}},
    )  # fmt: skip
    cond = wait_trigger_ready(k8s, ns, trigger)
    assert cond["reason"] == "Scheduled", cond
    sync = f"{release['gateway']}/fn/{ns}/{fn}"

    def runs() -> dict[str, int]:
        got = httpx.post(sync, json={"stats": True}, timeout=30).json()
        return {k: v for k, v in got.items() if k.startswith("cron/")}

    eventually(lambda: len(runs()) >= 3, timeout=30, what="three ticks")
    # Every dispatcher at once, no drain: the ticks in between are fired late.
    pods = ready_pods(component_pods(k8s, ns, "dispatcher"))
    restarts = {p.metadata.name: restart_count(p) for p in pods}
    for pod in pods:
        assert sigkill(pod) >= 1
    down_at = time.time()

    def all_back() -> bool:
        now = ready_pods(component_pods(k8s, ns, "dispatcher"))
        return len(now) == len(restarts) and all(
            restart_count(p) > restarts.get(p.metadata.name, -1) for p in now
        )

    eventually(all_back, timeout=120, what="every dispatcher restarted and ready")
    back_at = time.time()
    time.sleep(8)
    delete_trigger(k8s, ns, trigger)
    time.sleep(3)  # a tick fired just before the delete is still on its way
    got = runs()

    ticks = sorted(tick_of(k) for k in got)
    dupes = {k: v for k, v in got.items() if v != 1}
    gaps = [(a, b) for a, b in itertools.pairwise(ticks) if b - a != every]
    print(
        f"{len(ticks)} ticks from {ticks[0]} to {ticks[-1]}; dispatchers {sorted(restarts)}"
        f" killed at {down_at:.0f}, back at {back_at:.0f}"
    )
    assert not dupes, f"ticks run more than once: {dupes}"
    assert not gaps, f"ticks missing between: {gaps}"
    assert ticks[0] < down_at - every and ticks[-1] > back_at + every, "the run spans the restart"
    # One invocation per tick in Redis too (each tick's idempotency key).
    r: redis.Redis = release["redis"]
    keys = list(r.scan_iter(f"{function_slot(ns, fn)}:idem:cron/*", count=1000))
    assert len(keys) == len(ticks)


SLOW = """\
import asyncio
state = {"inflight": 0, "max": 0, "seen": []}
async def handle(event, context):
    if event.get("stats"):
        return state
    state["inflight"] += 1
    state["max"] = max(state["max"], state["inflight"])
    try:
        await asyncio.sleep(0.2)
        state["seen"].append(event["n"])
    finally:
        state["inflight"] -= 1
    return {"n": event["n"]}
"""


def test_a_queue_trigger_against_a_one_at_a_time_function_loses_nothing_and_burns_no_retry(
    k8s: client.ApiClient, ns: str, release: dict[str, Any]
) -> None:
    fn, trigger = "slow", "orders"
    wait_dispatchers_ready(k8s, ns)  # an earlier test may have killed them
    stream = f"orders-{ns}"
    create_function(k8s, ns, fn, SLOW, concurrency=1, scale={"min": 1, "max": 1})
    wait_function_pods_ready(k8s, ns, fn)
    create_trigger(
        k8s, ns, trigger,
        {"function": fn, "queue": {"stream": stream, "maxRetries": 2, "concurrency": 4,
                                   "backoff": {"initialSeconds": 1, "maxSeconds": 5}}},
    )  # fmt: skip
    cond = wait_trigger_ready(k8s, ns, trigger)
    assert cond["reason"] == "Consuming", cond
    r: redis.Redis = release["redis"]
    group = f"ember/{ns}/{trigger}"

    def has_group() -> bool:
        try:
            return any(g["name"].decode() == group for g in r.xinfo_groups(stream))
        except redis.ResponseError:
            return False

    # A new group starts at the stream's end: wait for it before adding.
    eventually(has_group, timeout=60, what=f"consumer group {group} on {stream}")
    n = 30
    entries = [
        r.xadd(stream, {"body": json.dumps({"n": i}), "content-type": "application/json"})
        for i in range(n)
    ]
    t0 = time.monotonic()

    def drained() -> bool:
        (g,) = [g for g in r.xinfo_groups(stream) if g["name"].decode() == group]
        return g["pending"] == 0 and g["lag"] == 0

    eventually(drained, timeout=60, interval=0.5, what=f"{stream} drained")
    elapsed = time.monotonic() - t0
    state = httpx.post(
        f"{release['gateway']}/fn/{ns}/{fn}", json={"stats": True}, timeout=30
    ).json()
    assert sorted(state["seen"]) == list(range(n)), "every message ran, once"
    assert state["max"] == 1, "the function never had two at once"
    # Each message took one attempt: waiting for the function used no retry.
    slot = trigger_slot(ns, trigger)
    for entry in entries:
        rec = r.hgetall(f"{slot}:inv:{entry.decode()}")
        assert rec[b"status"] == b"succeeded" and rec[b"attempts"] == b"1", rec
    assert r.xlen(f"{stream}-dlq") == 0
    # 30 x 0.2 s one at a time: the stream was worked off at the function's pace.
    assert elapsed >= n * 0.2 * 0.9
    print(f"{n} queue messages through a concurrency-1 function in {elapsed:.1f}s")
    r.delete(stream)
