"""The data plane as users meet it: Ember installed by its chart (operator,
two gateway replicas, signing on), Functions at zero woken by their first
call through the gateway, calls straight to a pod refused, routes and their
errors, a burst that scales a function out, and an overfull held queue.

One release for the module (installing the chart costs tens of seconds);
each test makes its own Functions.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from kubernetes import client

from ember_operator.api.v1alpha1 import GROUP, VERSION
from tests.conftest import REPO, on_kind, run_helm
from tests.e2e.conftest import ready_endpoint
from tests.kube_helpers import create_namespace, delete_namespace, eventually, unique_name

pytestmark = pytest.mark.e2e

TAG = os.environ.get("IMAGE_TAG", "dev")
SLEEPY = (
    "import time\n"
    "def handle(event, context):\n"
    "    time.sleep(float(context.query.get('s', '0')))\n"
    "    return {'got': event, 'fn': context.function, 'path': context.path}\n"
)


def helm(kubeconfig: str, *args: str) -> str:
    proc = run_helm("--kubeconfig", kubeconfig, *args, timeout=300)
    assert proc.returncode == 0, f"helm {' '.join(args)} failed:\n{proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module")
def ns(kubeconfig: str) -> Iterator[str]:
    from tests.kube_helpers import api_client

    api = api_client(kubeconfig)
    name = create_namespace(api, "e2e-gw")
    yield name
    delete_namespace(api, name)


@pytest.fixture(scope="module")
def gateway(kubeconfig: str, ns: str) -> Iterator[dict[str, str]]:
    """The release; returns the gateway's call and admin base URLs."""
    if on_kind():
        pytest.skip(
            "these tests reach the gateway's ClusterIP from the host, which kind does not route"
        )
    release = unique_name("gw")
    helm(
        kubeconfig, "install", release, str(REPO / "charts/ember"), "--namespace", ns,
        "--set", f"operator.watchNamespaces={{{ns}}}",
        "--set", f"operator.image.tag={TAG}", "--set", f"runtime.image.tag={TAG}",
        "--set", "signing.enabled=true",
        "--wait", "--timeout", "3m",
    )  # fmt: skip
    from tests.kube_helpers import api_client

    svc = client.CoreV1Api(api_client(kubeconfig)).read_namespaced_service(
        f"{release}-ember-gateway", ns
    )
    ports = {p.name: p.port for p in svc.spec.ports}
    urls = {
        "call": f"http://{svc.spec.cluster_ip}:{ports['http']}",
        "admin": f"http://{svc.spec.cluster_ip}:{ports['admin']}",
        "release": release,
    }
    # Synced: the gateway answers an unknown route with its own 404.
    eventually(
        lambda: httpx.get(urls["call"] + "/fn/none/none", timeout=5).status_code == 404,
        timeout=60,
        what="the gateway answering 404 for an unknown route",
    )
    yield urls
    helm(kubeconfig, "uninstall", release, "--namespace", ns, "--wait")


def make_function(k8s: client.ApiClient, ns: str, name: str, **spec: Any) -> None:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Function",
        "metadata": {"name": name},
        "spec": {"handler": "main:handle", "source": SLEEPY, **spec},
    }
    client.CustomObjectsApi(k8s).create_namespaced_custom_object(
        GROUP, VERSION, ns, "functions", body
    )


def function_status(k8s: client.ApiClient, ns: str, name: str) -> dict[str, Any]:
    fn = client.CustomObjectsApi(k8s).get_namespaced_custom_object(
        GROUP, VERSION, ns, "functions", name
    )
    return dict(fn.get("status") or {})


def ready_at_zero(k8s: client.ApiClient, ns: str, name: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        s = function_status(k8s, ns, name)
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in s.get("conditions", []))
        return s if ready and not s.get("replicas") else None

    return eventually(check, timeout=120, what=f"Function {name} Ready at zero replicas")


def cold_starts(admin: str, fn: str) -> float:
    text = httpx.get(admin + "/metrics", timeout=5).text
    m = re.search(
        r'ember_cold_start_seconds_count\{[^}]*function="' + re.escape(fn) + r'"[^}]*\} (\S+)',
        text,
    )
    return float(m.group(1)) if m else 0.0


def test_a_function_at_zero_wakes_on_its_first_call_and_its_pod_refuses_unsigned_calls(
    k8s: client.ApiClient, ns: str, gateway: dict[str, str]
) -> None:
    make_function(k8s, ns, "wake", scale={"min": 0, "max": 2})
    status = ready_at_zero(k8s, ns, "wake")
    assert status.get("url", "").endswith(f"/fn/{ns}/wake")

    t0 = time.monotonic()
    r = httpx.post(f"{gateway['call']}/fn/{ns}/wake/a/b?x=1", json={"n": 1}, timeout=90)
    cold = time.monotonic() - t0
    assert r.status_code == 200, r.text
    assert r.json() == {"got": {"n": 1}, "fn": f"{ns}/wake", "path": "/a/b"}
    assert r.headers.get("x-request-id")
    print(f"cold start through the gateway: {cold * 1000:.0f} ms")
    # Each gateway replica keeps its own histogram: one of them saw it.
    eventually(
        lambda: sum(cold_starts(gateway["admin"], f"{ns}/wake") for _ in range(6)) >= 1,
        timeout=10,
        what="the cold start in a gateway's ember_cold_start_seconds",
    )

    pod = ready_endpoint(k8s, ns, "wake")
    direct = httpx.post(f"http://{pod}:8080/", json={"n": 2}, timeout=10)
    assert direct.status_code == 403, direct.text
    assert direct.json()["error"] == "Runtime.Forbidden"
    # The kubelet's probes stay unsigned.
    assert httpx.get(f"http://{pod}:8080/_/ready", timeout=10).status_code == 200


def test_routes_404_405_and_an_http_trigger(
    k8s: client.ApiClient, ns: str, gateway: dict[str, str]
) -> None:
    make_function(k8s, ns, "routed", scale={"min": 1, "max": 1})
    path = f"/{unique_name('hook')}"
    client.CustomObjectsApi(k8s).create_namespaced_custom_object(
        GROUP,
        VERSION,
        ns,
        "triggers",
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Trigger",
            "metadata": {"name": "routed-http"},
            "spec": {"function": "routed", "http": {"path": path, "methods": ["POST"]}},
        },
    )
    missing = httpx.get(f"{gateway['call']}/fn/{ns}/missing", timeout=10)
    assert missing.status_code == 404 and missing.json()["error"] == "Gateway.NotFound"

    ok = eventually(
        lambda: (
            (r := httpx.post(gateway["call"] + path, json=[1], timeout=60)).status_code == 200 and r
        ),
        timeout=60,
        what="the HTTP Trigger's route answering 200",
    )
    assert ok.json() == {"got": [1], "fn": f"{ns}/routed", "path": path}
    wrong = httpx.get(gateway["call"] + path, timeout=10)
    assert wrong.status_code == 405
    assert "POST" in wrong.headers["allow"] and wrong.json()["error"] == "Gateway.MethodNotAllowed"


def test_a_burst_at_zero_is_all_answered_and_scales_out(
    k8s: client.ApiClient, ns: str, gateway: dict[str, str]
) -> None:
    make_function(k8s, ns, "burst", concurrency=1, scale={"min": 0, "max": 10, "target": 1})
    ready_at_zero(k8s, ns, "burst")
    apps = client.AppsV1Api(k8s)
    peak = 0

    async def burst() -> list[int]:
        nonlocal peak
        limits = httpx.Limits(max_connections=100)
        async with httpx.AsyncClient(timeout=120, limits=limits) as c:
            url = f"{gateway['call']}/fn/{ns}/burst?s=0.3"
            calls = [asyncio.create_task(c.post(url, json={"i": i})) for i in range(100)]
            while not all(t.done() for t in calls):
                replicas = apps.read_namespaced_deployment("burst", ns).spec.replicas or 0
                peak = max(peak, replicas)
                await asyncio.sleep(0.5)
            return [t.result().status_code for t in calls]

    codes = asyncio.run(burst())
    assert Counter(codes) == {200: 100}
    assert peak > 1, "the autoscaler did not scale the burst out"
    # Its decisions are visible: in the Function's status and the operator's metrics.
    assert function_status(k8s, ns, "burst")["autoscaler"]["scaleUps"] >= 1
    operator = client.CoreV1Api(k8s).list_namespaced_pod(
        ns, label_selector="app.kubernetes.io/component=operator"
    )
    metrics = httpx.get(f"http://{operator.items[0].status.pod_ip}:9090/metrics", timeout=10)
    assert f'ember_autoscaler_desired_replicas{{namespace="{ns}",function="burst"}}' in metrics.text


def test_an_overfull_held_queue_answers_503_at_once_and_nothing_else_fails(
    k8s: client.ApiClient, ns: str, gateway: dict[str, str]
) -> None:
    make_function(k8s, ns, "flood", concurrency=1, scale={"min": 0, "max": 1})
    ready_at_zero(k8s, ns, "flood")

    host, port = gateway["call"].removeprefix("http://").rsplit(":", 1)
    body = b'{"i": 1}'
    request = (
        f"POST /fn/{ns}/flood HTTP/1.1\r\nhost: e2e\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    ).encode() + body

    async def flood() -> list[tuple[int, float, str]]:
        # Connect first, then send all at once: the clock runs from each
        # request's write, so the test process's own connection setup for
        # 400 sockets is not counted against the gateway.
        conns = await asyncio.gather(
            *(asyncio.open_connection(host, int(port)) for _ in range(400))
        )

        async def one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Any:
            t0 = time.monotonic()
            writer.write(request)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 120)
            elapsed = time.monotonic() - t0
            writer.close()
            lines = head.decode("latin-1").split("\r\n")
            headers = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
            return int(lines[0].split()[1]), elapsed, headers.get("retry-after", "")

        return await asyncio.gather(*(one(r, w) for r, w in conns))

    results = asyncio.run(flood())
    codes = Counter(code for code, _, _ in results)
    assert set(codes) <= {200, 503}, codes
    assert codes[503] > 0, "2 replicas x 100 held should overflow at 400 calls"
    overflow = [(t, ra) for code, t, ra in results if code == 503]
    assert all(ra for _, ra in overflow), "every 503 carries Retry-After"
    assert max(t for t, _ in overflow) < 1.0, "an overflow answer waited"


DIGEST = (
    "import hashlib\n"
    "def handle(event, context):\n"
    "    if context.path == '/big':\n"
    "        n = int(context.query['n'])\n"
    "        return (bytes(range(256)) * (n // 256 + 1))[:n]\n"
    "    return {'len': len(event), 'sha256': hashlib.sha256(event).hexdigest()}\n"
)


def test_large_bodies_stream_through_the_gateway_both_ways(
    k8s: client.ApiClient, ns: str, gateway: dict[str, str]
) -> None:
    """A 5 MiB upload (with a length, then chunked) and a 5 MiB answer,
    through a gateway replica to a real pod and back, intact."""
    import hashlib

    make_function(k8s, ns, "digest", source=DIGEST, scale={"min": 1, "max": 1})
    base = f"{gateway['call']}/fn/{ns}/digest"
    body = (bytes(range(256)) * 20481)[: 5 * 1024 * 1024 + 3]
    octets = {"content-type": "application/octet-stream"}
    want = {"len": len(body), "sha256": hashlib.sha256(body).hexdigest()}

    def upload() -> httpx.Response | None:
        r = httpx.post(base, content=body, headers=octets, timeout=60)
        return r if r.status_code == 200 else None

    r = eventually(upload, timeout=120, what="the digest function answering through the gateway")
    assert r.json() == want

    def pieces() -> Iterator[bytes]:
        for i in range(0, len(body), 256 * 1024):
            yield body[i : i + 256 * 1024]

    r = httpx.post(base, content=pieces(), headers=octets, timeout=60)  # chunked
    assert r.status_code == 200, r.text
    assert r.json() == want
    r = httpx.get(f"{base}/big", params={"n": str(5 * 1024 * 1024)}, timeout=60)
    assert r.status_code == 200
    assert r.content == body[: 5 * 1024 * 1024]
