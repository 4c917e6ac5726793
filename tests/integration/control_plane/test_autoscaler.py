"""The autoscaler against the real API server, with a stand-in gateway.

The gateway peer is a real HTTP server on loopback answering ``/_/stats``
with the load the test sets. The autoscaler runs in its own thread and
event loop (as KopfRunner runs the operator): first on its own, over a
Function and a Deployment this test made, so that every write it makes can
be checked (only the Deployment's ``scale`` and the Function's status);
then inside the operator, to show the startup wiring scales a Function the
operator rendered.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from ember_operator.autoscaler.setup import RunningAutoscaler
from ember_operator.config import Config
from ember_operator.kube.client import Kube
from tests.integration.control_plane.kit import Cluster, function, run_operator
from tests.kube_helpers import eventually

pytestmark = pytest.mark.integration


class FakeGateway:
    """``GET /_/stats`` with whatever ``functions`` holds now."""

    def __init__(self) -> None:
        self.functions: dict[str, dict[str, int]] = {}
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = json.dumps({"functions": gateway.functions}).encode()
                self.send_response(200 if self.path == "/_/stats" else 404)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def gateway() -> Iterator[FakeGateway]:
    g = FakeGateway()
    yield g
    g.close()


class AutoscalerThread:
    """The autoscaler alone, with its own Deployment watch, recording every
    request it makes to the API server."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.requests: list[tuple[str, str]] = []
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._up = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        kube = await Kube.connect()
        request = kube.request

        async def recorded(method: str, url: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
            self.requests.append((method, url))
            return await request(method, url, *args, **kwargs)

        kube.request = recorded  # type: ignore[method-assign]
        running = RunningAutoscaler(kube, self.config, own_deployment_watch=True)
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        running.start()
        self._up.set()
        try:
            await self._stop.wait()
        finally:
            await running.stop()
            await kube.close()

    def __enter__(self) -> AutoscalerThread:
        self._thread.start()
        assert self._up.wait(30)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def writes(self) -> list[tuple[str, str]]:
        return [(m, u) for m, u in self.requests if m != "GET"]


def deployment_of(fn: dict[str, Any], replicas: int) -> dict[str, Any]:
    meta = fn["metadata"]
    labels = {"ember.dev/function": meta["name"]}
    owner = {
        "apiVersion": fn["apiVersion"],
        "kind": "Function",
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
    }
    container = {"name": "function", "image": "ember/runtime:dev", "imagePullPolicy": "Never"}
    return {
        "metadata": {"name": meta["name"], "labels": labels, "ownerReferences": [owner]},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}},
        },
    }


def replicas(cluster: Cluster, ns: str, name: str) -> int:
    return int(cluster.apps.read_namespaced_deployment_scale(name, ns).spec.replicas or 0)


def test_scales_up_on_load_then_to_zero_writing_only_scale(
    cluster: Cluster, namespace: str, gateway: FakeGateway
) -> None:
    ns = namespace
    scale = {"min": 0, "max": 4, "target": 2, "idleSeconds": 4}
    fn = cluster.create("functions", ns, function("busy", scale=scale))
    cluster.apps.create_namespaced_deployment(ns, deployment_of(fn, 1))
    spec_before = cluster.deployment(ns, "busy").spec.template.to_dict()
    config = Config(namespaces=(ns,), autoscaler_gateways=(gateway.address,))
    with AutoscalerThread(config) as scaler:
        gateway.functions = {f"{ns}/busy": {"inflight": 6, "held": 4, "requests_total": 7}}
        eventually(lambda: replicas(cluster, ns, "busy") == 4, what="scaled to max", timeout=20)
        status = (cluster.get("functions", ns, "busy") or {}).get("status") or {}
        auto = status["autoscaler"]
        assert auto["desiredReplicas"] == 4 and auto["panic"] is True
        assert auto["reason"] == "AtMaximum" and auto["scaleUps"] == 1 and auto["lastScaleTime"]

        gateway.functions = {f"{ns}/busy": {"inflight": 0, "held": 0, "requests_total": 9}}
        eventually(lambda: replicas(cluster, ns, "busy") == 0, what="scaled to zero", timeout=30)

        def idle_reported() -> bool:
            obj = cluster.get("functions", ns, "busy") or {}
            return bool(obj.get("status", {}).get("autoscaler", {}).get("reason") == "Idle")

        eventually(idle_reported, what="status says Idle", timeout=10)

    writes = scaler.writes()
    assert writes, "no writes at all"
    allowed = {
        f"/apis/apps/v1/namespaces/{ns}/deployments/busy/scale",
        f"/apis/ember.dev/v1alpha1/namespaces/{ns}/functions/busy/status",
    }
    assert {(m, u) for m, u in writes} <= {("PATCH", u) for u in allowed}, writes
    scale_writes = [u for _, u in writes if u.endswith("/scale")]
    assert len(scale_writes) == 2, writes  # up once, down once: no oscillation
    dep = cluster.deployment(ns, "busy")
    assert dep.spec.template.to_dict() == spec_before
    assert dep.spec.replicas == 0


def test_the_operator_starts_the_autoscaler(
    cluster: Cluster,
    namespace: str,
    gateway: FakeGateway,
    operator_env: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ns = namespace
    monkeypatch.setenv("EMBER_AUTOSCALER_GATEWAYS", gateway.address)
    scale = {"min": 0, "max": 3, "target": 1, "idleSeconds": 600}
    with run_operator(ns) as runner:
        cluster.create("functions", ns, function("woken", scale=scale))
        eventually(lambda: cluster.deployment(ns, "woken"), what="deployment", timeout=30)
        assert replicas(cluster, ns, "woken") == 0
        gateway.functions = {f"{ns}/woken": {"inflight": 0, "held": 2, "requests_total": 0}}
        eventually(lambda: replicas(cluster, ns, "woken") == 2, what="scaled up", timeout=20)

        def reported() -> dict[str, Any] | None:
            obj = cluster.get("functions", ns, "woken") or {}
            auto = obj.get("status", {}).get("autoscaler")
            return auto if auto and auto.get("desiredReplicas") == 2 else None

        eventually(reported, what="status.autoscaler", timeout=10)
    assert runner.exception is None, runner.output
