"""Helpers for the async path's e2e tests (tests/e2e/test_async.py): the
release's Redis as the test reads it, the async API as a client uses it,
Functions and Triggers, and two ways to kill a pod.

Killing: ``force_delete`` removes the pod object at once (a new pod, a new
name: the dispatcher's consumer name changes, so another replica must claim
what it held); ``sigkill`` sends SIGKILL to the pod's processes from the
node, as an OOM kill or a crash would (no SIGTERM, no drain; the kubelet
restarts the container under the same pod name). The local cluster's node
is this machine, so the test finds the processes by the pod's cgroup.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis
from kubernetes import client
from kubernetes.stream import stream

from ember_operator.api.v1alpha1 import GROUP, VERSION
from tests.kube_helpers import eventually

FINAL = frozenset({"succeeded", "failed", "dead-lettered"})


# --- Kubernetes objects --------------------------------------------------------


def create_function(k8s: client.ApiClient, ns: str, name: str, source: str, **spec: Any) -> None:
    client.CustomObjectsApi(k8s).create_namespaced_custom_object(
        GROUP,
        VERSION,
        ns,
        "functions",
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Function",
            "metadata": {"name": name},
            "spec": {"handler": "main:handle", "source": source, **spec},
        },
    )


def set_function_source(k8s: client.ApiClient, ns: str, name: str, source: str) -> int:
    """Patch the Function's source; returns its new generation."""
    obj = client.CustomObjectsApi(k8s).patch_namespaced_custom_object(
        GROUP, VERSION, ns, "functions", name, {"spec": {"source": source}}
    )
    return int(obj["metadata"]["generation"])


def create_trigger(k8s: client.ApiClient, ns: str, name: str, spec: dict[str, Any]) -> None:
    client.CustomObjectsApi(k8s).create_namespaced_custom_object(
        GROUP,
        VERSION,
        ns,
        "triggers",
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Trigger",
            "metadata": {"name": name},
            "spec": spec,
        },
    )


def delete_trigger(k8s: client.ApiClient, ns: str, name: str) -> None:
    client.CustomObjectsApi(k8s).delete_namespaced_custom_object(
        GROUP, VERSION, ns, "triggers", name
    )


def ready_condition(k8s: client.ApiClient, ns: str, plural: str, name: str) -> dict[str, Any]:
    obj = client.CustomObjectsApi(k8s).get_namespaced_custom_object(
        GROUP, VERSION, ns, plural, name
    )
    for c in (obj.get("status") or {}).get("conditions", []):
        if c["type"] == "Ready":
            return dict(c)
    return {}


def wait_trigger_ready(k8s: client.ApiClient, ns: str, name: str) -> dict[str, Any]:
    return eventually(
        lambda: (c := ready_condition(k8s, ns, "triggers", name)).get("status") == "True" and c,
        timeout=60,
        what=f"Trigger {name} Ready",
    )


def function_pods(k8s: client.ApiClient, ns: str, name: str) -> list[client.V1Pod]:
    """The Function's pods that are not being deleted."""
    pods = client.CoreV1Api(k8s).list_namespaced_pod(
        ns, label_selector=f"ember.dev/function={name}"
    )
    return [p for p in pods.items if not p.metadata.deletion_timestamp]


def component_pods(k8s: client.ApiClient, ns: str, component: str) -> list[client.V1Pod]:
    pods = client.CoreV1Api(k8s).list_namespaced_pod(
        ns, label_selector=f"app.kubernetes.io/component={component}"
    )
    return [p for p in pods.items if not p.metadata.deletion_timestamp]


def ready_pods(pods: Iterable[client.V1Pod]) -> list[client.V1Pod]:
    def ready(p: client.V1Pod) -> bool:
        return any(c.type == "Ready" and c.status == "True" for c in (p.status.conditions or []))

    return [p for p in pods if ready(p)]


def wait_function_pods_ready(k8s: client.ApiClient, ns: str, name: str, count: int = 1) -> None:
    eventually(
        lambda: len(ready_pods(function_pods(k8s, ns, name))) >= count,
        timeout=120,
        what=f"{count} ready pod(s) of Function {name}",
    )


def wait_dispatchers_ready(k8s: client.ApiClient, ns: str, count: int = 2) -> None:
    eventually(
        lambda: len(ready_pods(component_pods(k8s, ns, "dispatcher"))) >= count,
        timeout=120,
        what=f"{count} ready dispatcher pods",
    )


def force_delete(k8s: client.ApiClient, pod: client.V1Pod) -> None:
    client.CoreV1Api(k8s).delete_namespaced_pod(
        pod.metadata.name, pod.metadata.namespace, grace_period_seconds=0
    )


def sigkill(pod: client.V1Pod, command_word: str = "python3") -> int:
    """SIGKILL every process of ``pod`` whose command line has
    ``command_word`` (not the pod's sandbox), found by the pod's cgroup on
    this node; returns how many were killed."""
    marker = f"pod{pod.metadata.uid}"
    killed = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if marker not in (proc / "cgroup").read_text():
                continue
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            if not any(command_word.encode() in a for a in argv):
                continue
            os.kill(int(proc.name), signal.SIGKILL)
            killed += 1
        except (OSError, ProcessLookupError):
            continue
    return killed


def exec_in(k8s: client.ApiClient, pod: client.V1Pod, command: list[str]) -> str:
    """Run ``command`` in the pod's first container; its stdout and stderr."""
    return str(
        stream(
            client.CoreV1Api(k8s).connect_get_namespaced_pod_exec,
            pod.metadata.name,
            pod.metadata.namespace,
            command=command,
            stderr=True,
            stdin=False,
            stdout=True,
            tty=False,
            _request_timeout=60,
        )
    )


def pod_log_lines(k8s: client.ApiClient, pod: client.V1Pod) -> list[str]:
    text = client.CoreV1Api(k8s).read_namespaced_pod_log(pod.metadata.name, pod.metadata.namespace)
    return str(text).splitlines()


# --- the release's Redis -------------------------------------------------------


def release_redis(k8s: client.ApiClient, ns: str, release: str) -> redis.Redis:
    """A client of the bundled Redis, at its Service's ClusterIP (the local
    cluster routes ClusterIPs from the node), with the chart's password."""
    core = client.CoreV1Api(k8s)
    svc = core.read_namespaced_service(f"{release}-ember-redis", ns)
    secret = core.read_namespaced_secret(f"{release}-ember-redis", ns)
    password = base64.b64decode(secret.data["password"]).decode()
    r = redis.Redis(host=svc.spec.cluster_ip, port=6379, password=password, socket_timeout=10)
    eventually(r.ping, timeout=30, what="the release's Redis answering PING")
    return r


def function_slot(ns: str, name: str) -> str:
    return f"ember:{{fn:{ns}/{name}}}"


def trigger_slot(ns: str, name: str) -> str:
    return f"ember:{{tr:{ns}/{name}}}"


# --- the async API ---------------------------------------------------------------


@dataclass
class Submission:
    key: str
    body: dict[str, Any]
    ids: list[str] = field(default_factory=list)  # the id each answer named
    codes: list[int] = field(default_factory=list)  # 202 created, 200 repeated


async def submit(c: httpx.AsyncClient, url: str, sub: Submission, *, attempts: int = 20) -> None:
    """POST one async call with its Idempotency-Key; a 503 or a lost
    connection is retried with the same key (as a client should), so
    retries can never make a second invocation."""
    for i in range(attempts):
        try:
            r = await c.post(url, json=sub.body, headers={"idempotency-key": sub.key})
        except httpx.TransportError:
            await asyncio.sleep(0.2 * (i + 1))
            continue
        if r.status_code in (200, 202):
            sub.codes.append(r.status_code)
            sub.ids.append(r.headers["x-ember-invocation-id"])
            return
        assert r.status_code == 503, f"{url}: {r.status_code} {r.text}"
        await asyncio.sleep(0.2 * (i + 1))
    raise AssertionError(f"{url}: no answer for {sub.key} after {attempts} tries")


async def statuses(
    c: httpx.AsyncClient, base: str, ids: Iterable[str], parallel: int = 32
) -> dict[str, dict[str, Any]]:
    """GET each invocation's record (None-free: a 404 is an error here)."""
    sem = asyncio.Semaphore(parallel)
    out: dict[str, dict[str, Any]] = {}

    async def one(inv: str) -> None:
        async with sem:
            r = await c.get(f"{base}/{inv}")
            assert r.status_code == 200, f"{base}/{inv}: {r.status_code} {r.text}"
            out[inv] = r.json()

    await asyncio.gather(*(one(i) for i in ids))
    return out


async def wait_final(
    c: httpx.AsyncClient, base: str, ids: Iterable[str], within: float
) -> dict[str, dict[str, Any]]:
    """Poll until every invocation is final; returns the records."""
    pending = set(ids)
    done: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + within
    while pending:
        got = await statuses(c, base, pending)
        for inv, rec in got.items():
            if rec["status"] in FINAL:
                done[inv] = rec
                pending.discard(inv)
        if not pending:
            break
        if time.monotonic() > deadline:
            left = {got[i]["status"] for i in pending}
            raise AssertionError(f"{len(pending)} invocations not final after {within}s: {left}")
        await asyncio.sleep(1.0)
    return done


def result_json(record: dict[str, Any]) -> Any:
    return json.loads(record["result"]["body"])
