"""Benchmark ``cold_start``: a call to a Function at zero, through the
gateway, until its 200; against the floor of a pod start on this cluster.

Ember is installed from its chart (operator and two gateway replicas,
signing on) into a namespace of its own, watching only that namespace, and
uninstalled at the end. One Function (inline source, ``scale.min: 0``)
starts at zero. Each cycle:

* **ember**: one POST to ``/fn/<ns>/<name>`` at the gateway Service's
  ClusterIP, timed from the send until its 200 (the gateway holds it, sets
  the Deployment's scale to 1, probes the new pod's ``/_/ready`` directly
  and releases the call).
* **peer**: a plain Deployment with the same pod template as the Function's
  (same runtime image, env, source ConfigMap, resources and readiness
  probe; only the labels differ, so neither the Function's Service nor the
  operator see it), scaled 0 -> 1 through the ``scale`` subresource (what
  ``kubectl scale`` writes), timed until a watch sees its pod Ready: the
  floor of a pod start here, kubelet readiness period (1 s) included.

The two sides alternate which goes first. Before each measurement both
sides go back to zero the same way: the Deployment's scale is set to 0
through the subresource, and the run waits until no pod of it is left
(terminating ones included) and its EndpointSlices list no address; then
2 s for the node to settle (a start right after a teardown pays for the
kubelet's cleanup, which would favour whichever side goes second). The autoscaler is
not used to return to zero (the Function's ``idleSeconds`` is an hour):
the stable path to zero costs ``idleSeconds`` + a 2 s tick per cycle and
measures nothing more; tests/e2e/test_gateway_resilience.py covers it.

Goal: ember p50 <= peer p50 + 200 ms.

    python bench/cold_start.py [--cycles 10]

Needs the local cluster (``ember-local``) with Ember's images loaded
(``make images``) and helm (``make helm``); the gateway's ClusterIP must be
reachable from this host, as on hack/cluster.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import yaml
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REPO, median, percentile, report, wait_quiet

GROUP, VERSION = "ember.dev", "v1alpha1"
ALLOWED_CONTEXTS = {"ember-local"}
FUNCTION = "cold"
PEER = "cold-peer"
PEER_LABELS = {"app.kubernetes.io/name": PEER, "ember.dev/bench": "cold-start-peer"}
SOURCE = "def handle(event, context):\n    return {'hello': event.get('name', 'world')}\n"
GOAL_MS = 200.0
SETTLE_SECONDS = float(os.environ.get("EMBER_COLD_SETTLE_SECONDS", "2"))
HELM = os.environ.get(
    "EMBER_HELM",
    str(
        Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
        / "ember/tools/helm-v3.22.0/helm"
    ),
)


def kubeconfig() -> str:
    path = os.environ.get("EMBER_KUBECONFIG") or os.environ.get(
        "KUBECONFIG", "/var/lib/ember-cluster/kubeconfig"
    )
    ctx = yaml.safe_load(Path(path).read_text()).get("current-context")
    if ctx not in ALLOWED_CONTEXTS:
        raise SystemExit(
            f"refusing kube context {ctx!r}: cold_start reaches ClusterIPs from this host, "
            f"which only {sorted(ALLOWED_CONTEXTS)} routes"
        )
    return path


def helm(kube: str, *args: str, timeout: float = 300) -> None:
    if not Path(HELM).exists():
        raise SystemExit(f"helm not found at {HELM}: run `make helm`")
    proc = subprocess.run(
        [HELM, "--kubeconfig", kube, *args], capture_output=True, text=True, timeout=timeout
    )
    if proc.returncode != 0:
        raise SystemExit(f"helm {' '.join(args[:2])} failed:\n{proc.stderr[-2000:]}")


def wait_for(what: str, check: Any, timeout: float, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except ApiException as e:
            last_exc = e
        time.sleep(interval)
    raise SystemExit(f"timed out after {timeout}s waiting for {what} (last error: {last_exc!r})")


class Cluster:
    def __init__(self, api: client.ApiClient, ns: str) -> None:
        self.ns = ns
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.disc = client.DiscoveryV1Api(api)
        self.custom = client.CustomObjectsApi(api)

    def scale(self, name: str, replicas: int) -> None:
        self.apps.patch_namespaced_deployment_scale(name, self.ns, {"spec": {"replicas": replicas}})

    def pods(self, selector: str) -> list[Any]:
        return list(self.core.list_namespaced_pod(self.ns, label_selector=selector).items)

    def addresses(self, service: str) -> int:
        slices = self.disc.list_namespaced_endpoint_slice(
            self.ns, label_selector=f"kubernetes.io/service-name={service}"
        )
        return sum(len(ep.addresses or []) for s in slices.items for ep in s.endpoints or [])

    def to_zero(self, deployment: str, selector: str, service: str | None) -> float:
        """Scale to 0 and wait until no pod is left and no address is listed."""
        t0 = time.monotonic()
        self.scale(deployment, 0)
        wait_for(
            f"{deployment} at zero",
            lambda: (
                not self.pods(selector)
                and (service is None or self.addresses(service) == 0)
                and (self.apps.read_namespaced_deployment(deployment, self.ns).spec.replicas == 0)
            ),
            timeout=120,
            interval=0.2,
        )
        return time.monotonic() - t0


def make_function(c: Cluster) -> None:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Function",
        "metadata": {"name": FUNCTION},
        "spec": {
            "handler": "main:handle",
            "source": SOURCE,
            "scale": {"min": 0, "max": 1, "idleSeconds": 3600},
        },
    }
    c.custom.create_namespaced_custom_object(GROUP, VERSION, c.ns, "functions", body)

    def ready_at_zero() -> bool:
        fn = c.custom.get_namespaced_custom_object(GROUP, VERSION, c.ns, "functions", FUNCTION)
        st = fn.get("status") or {}
        ready = any(
            x.get("type") == "Ready" and x.get("status") == "True"
            for x in st.get("conditions") or []
        )
        return ready and not st.get("replicas")

    wait_for("the Function Ready at zero", ready_at_zero, timeout=120, interval=0.3)


def make_peer(c: Cluster) -> None:
    """The Function's own pod template in a plain Deployment, relabelled."""
    fn_dep = c.apps.read_namespaced_deployment(FUNCTION, c.ns)
    template = c.apps.api_client.sanitize_for_serialization(fn_dep.spec.template)
    template = copy.deepcopy(template)
    template["metadata"]["labels"] = dict(PEER_LABELS)
    body = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": PEER, "labels": dict(PEER_LABELS)},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": dict(PEER_LABELS)},
            "template": template,
        },
    }
    c.apps.create_namespaced_deployment(c.ns, body)


def call_ember(url: str) -> tuple[float, int]:
    t0 = time.perf_counter()
    r = httpx.post(url, json={"name": "cold"}, timeout=90)
    elapsed = time.perf_counter() - t0
    if r.status_code != 200:
        raise SystemExit(f"ember: {r.status_code} {r.text[:300]}")
    return elapsed, r.status_code


def start_peer(c: Cluster, selector: str) -> float:
    """Scale 0 -> 1; seconds until a watch sees the pod Ready."""
    listing = c.core.list_namespaced_pod(c.ns, label_selector=selector)
    if listing.items:
        raise SystemExit(f"peer: {len(listing.items)} pods left before the cycle")
    rv = listing.metadata.resource_version
    seen = threading.Event()
    stamp: list[float] = []
    w = watch.Watch()

    def watcher() -> None:
        for ev in w.stream(
            c.core.list_namespaced_pod,
            c.ns,
            label_selector=selector,
            resource_version=rv,
            timeout_seconds=120,
        ):
            pod = ev["object"]
            conds = (pod.status.conditions if pod.status else None) or []
            if any(x.type == "Ready" and x.status == "True" for x in conds):
                stamp.append(time.perf_counter())
                seen.set()
                w.stop()
                return

    thread = threading.Thread(target=watcher, daemon=True)
    thread.start()
    t0 = time.perf_counter()
    c.scale(PEER, 1)
    if not seen.wait(120):
        raise SystemExit("peer: no Ready pod within 120 s")
    thread.join(5)
    return stamp[0] - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=10)
    parser.add_argument("--tag", default=os.environ.get("IMAGE_TAG", "dev"))
    args = parser.parse_args()

    kube = kubeconfig()
    api = config.new_client_from_config(config_file=kube)
    c = Cluster(api, f"bench-cold-{uuid.uuid4().hex[:6]}")
    c.core.create_namespace({"metadata": {"name": c.ns, "labels": {"ember.dev/bench": "1"}}})
    release = f"cold-{uuid.uuid4().hex[:4]}"
    installed = False
    ember: list[float] = []
    peer: list[float] = []
    resets: dict[str, list[float]] = {"ember": [], "peer": []}
    try:
        t_install = time.monotonic()
        helm(
            kube, "install", release, str(REPO / "charts/ember"), "--namespace", c.ns,
            "--set", f"operator.watchNamespaces={{{c.ns}}}",
            "--set", f"operator.image.tag={args.tag}", "--set", f"runtime.image.tag={args.tag}",
            "--wait", "--timeout", "3m",
        )  # fmt: skip
        installed = True
        svc = c.core.read_namespaced_service(f"{release}-ember-gateway", c.ns)
        port = next(p.port for p in svc.spec.ports if p.name == "http")
        base = f"http://{svc.spec.cluster_ip}:{port}"
        wait_for(
            "the gateway answering",
            lambda: httpx.get(base + "/fn/none/none", timeout=5).status_code == 404,
            timeout=60,
            interval=0.3,
        )
        print(f"  installed {release} in {c.ns} in {time.monotonic() - t_install:.0f}s", flush=True)
        make_function(c)
        make_peer(c)
        url = f"{base}/fn/{c.ns}/{FUNCTION}"
        fn_selector = f"ember.dev/function={FUNCTION}"
        peer_selector = "ember.dev/bench=cold-start-peer"
        # One warm-up of each, untimed: the first pod of an image on this
        # node pays for things no later start does.
        call_ember(url)
        start_peer(c, peer_selector)
        for cycle in range(args.cycles):
            order = ("ember", "peer") if cycle % 2 == 0 else ("peer", "ember")
            got: dict[str, float] = {}
            for side in order:
                # Both sides at zero before either starts, and the node
                # settled: a pod start right after a pod's teardown pays for
                # the kubelet's cleanup (measured: ~400 ms on the first side).
                resets["ember"].append(c.to_zero(FUNCTION, fn_selector, FUNCTION))
                resets["peer"].append(c.to_zero(PEER, peer_selector, None))
                time.sleep(SETTLE_SECONDS)
                wait_quiet(busy_below=0.5, seconds=1, timeout=10)
                if side == "ember":
                    got[side] = call_ember(url)[0]
                else:
                    got[side] = start_peer(c, peer_selector)
            ember.append(got["ember"])
            peer.append(got["peer"])
            print(
                f"  cycle {cycle + 1:2d} ({order[0]} first): ember {got['ember'] * 1000:6.0f} ms"
                f"  peer {got['peer'] * 1000:6.0f} ms",
                flush=True,
            )
    finally:
        if installed:
            with contextlib.suppress(ApiException):
                c.custom.delete_namespaced_custom_object(
                    GROUP, VERSION, c.ns, "functions", FUNCTION
                )
            helm(kube, "uninstall", release, "--namespace", c.ns, "--wait")
        c.core.delete_namespace(c.ns, propagation_policy="Background")

    ms = {side: [x * 1000 for x in xs] for side, xs in (("ember", ember), ("peer", peer))}
    p50 = {side: median(xs) for side, xs in ms.items()}
    p95 = {side: percentile(xs, 95) for side, xs in ms.items()}
    diff = p50["ember"] - p50["peer"]
    met = diff <= GOAL_MS
    results = {
        "cycles": args.cycles,
        "ember_ms": ms["ember"],
        "peer_ms": ms["peer"],
        "p50_ms": p50,
        "p95_ms": p95,
        "p50_diff_ms": diff,
        "reset_seconds": resets,
        "return_to_zero": "scale subresource to 0, then no pod and no EndpointSlice address",
        "goal": {"p50_diff_ms_max": GOAL_MS},
        "goal_met": met,
    }
    report(
        "cold_start",
        results,
        [
            f"{args.cycles} cycles, interleaved (returned to zero by the scale subresource)",
            f"ember (a call through the gateway until its 200): "
            f"p50 {p50['ember']:.0f} ms, p95 {p95['ember']:.0f} ms",
            f"peer  (scale 0->1 of the same pod template until Ready): "
            f"p50 {p50['peer']:.0f} ms, p95 {p95['peer']:.0f} ms",
            f"p50 difference ember - peer: {diff:+.0f} ms (goal <= +{GOAL_MS:.0f}) "
            f"{'MET' if met else 'MISSED'}",
        ],
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
