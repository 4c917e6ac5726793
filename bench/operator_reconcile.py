"""Benchmark ``operator_reconcile``: how fast does the operator turn 1,000
new Functions (scale.min 0) into Deployments with a Ready status, and how much
memory does it grow, against a kopf operator with no-op handlers (the peer,
bench/_operator_noop.py) watching the same objects in the same run.

Each side runs as its own process against the real API server
(``KUBECONFIG``, default the local cluster's), in its own namespace, in
interleaved rounds. For the peer a Function counts as done when kopf has
finished handling it (its ``ember.dev/last-handled-configuration``
annotation is written: the peer keeps kopf's persistence). Ember keeps that
in memory instead, so a Function counts as done when its status says Ready
for its current generation, which the operator writes only after the
Deployment exists (checked again by listing at the end).

A third side, the write floor (bench/_operator_floor.py), makes only the
four writes any operator of this object model must make per Function
(ConfigMap, Service, Deployment, status), with no kopf, under the same
"done". Its ratio to the peer is the ceiling for Ember's on this machine.

Goal: throughput >= 0.8x the peer's; RSS growth <= 50 MB per 1,000 Functions.

Run it where no other Ember operator watches ``bench-*`` namespaces (a
cluster-wide one from ``make up`` would reconcile the same objects); set
EMBER_KUBECONFIG to point it at another API server.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from _common import PYTHON, REPO, free_port, median, ratio, report, wait_http, wait_quiet

GROUP, VERSION = "ember.dev", "v1alpha1"
HANDLED = "ember.dev/last-handled-configuration"
ALLOWED_CONTEXTS = {"ember-local", "kind-ember"}
SOURCE = "def handle(event, context):\n    return {'ok': True}\n"


def kubeconfig() -> str:
    path = os.environ.get("EMBER_KUBECONFIG") or os.environ.get(
        "KUBECONFIG", "/var/lib/ember-cluster/kubeconfig"
    )
    ctx = yaml.safe_load(Path(path).read_text()).get("current-context")
    if ctx not in ALLOWED_CONTEXTS:
        raise SystemExit(f"refusing kube context {ctx!r}: only {sorted(ALLOWED_CONTEXTS)}")
    return path


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def install_crds(ext: client.ApiextensionsV1Api) -> None:
    for path in sorted((REPO / "crds").glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        name = crd["metadata"]["name"]
        try:
            live = ext.read_custom_resource_definition(name)
            crd["metadata"]["resourceVersion"] = live.metadata.resource_version
            ext.replace_custom_resource_definition(name, crd)
        except ApiException as e:
            if e.status != 404:
                raise
            ext.create_custom_resource_definition(crd)
    time.sleep(2)


def function_body(i: int) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Function",
        "metadata": {"name": f"fn-{i:05d}"},
        "spec": {"handler": "main:handle", "source": SOURCE, "scale": {"min": 0, "max": 5}},
    }


def done(obj: dict[str, Any], need_ready: bool) -> bool:
    meta = obj.get("metadata") or {}
    if not need_ready:
        return HANDLED in (meta.get("annotations") or {})
    status = obj.get("status") or {}
    if status.get("observedGeneration") != meta.get("generation"):
        return False
    conds = status.get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)


def start_operator(side: str, namespace: str, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "KUBECONFIG": kubeconfig(),
        "EMBER_NAMESPACES": namespace,
        "EMBER_LIVENESS_ENDPOINT": f"http://127.0.0.1:{port}/healthz",
        "EMBER_LOG_LEVEL": "WARNING",
        "PYTHONPATH": os.pathsep.join(
            [str(REPO / "operator" / "src"), os.environ.get("PYTHONPATH", "")]
        ),
    }
    if side == "ember":
        cmd = [PYTHON, "-m", "ember_operator"]
    else:
        cmd = [PYTHON, str(REPO / "bench" / f"_operator_{side}.py")]
    log = open(f"/tmp/ember-bench-{side}-{namespace}.log", "wb")  # noqa: SIM115
    return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)


def run_side(
    side: str, count: int, workers: int, timeout: float, apis: dict[str, Any]
) -> dict[str, float]:
    core: client.CoreV1Api = apis["core"]
    custom: client.CustomObjectsApi = apis["custom"]
    apps: client.AppsV1Api = apis["apps"]
    waited = wait_quiet()
    if waited > 5:
        print(f"  (waited {waited:.0f}s for the machine to go quiet)", flush=True)
    ns = f"bench-{side}-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": ns, "labels": {"ember.dev/bench": "1"}}})
    port = free_port()
    proc = start_operator(side, ns, port)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", timeout=60, proc=proc)
        time.sleep(2.0)  # let startup allocations settle before the baseline
        rss_before = rss_mb(proc.pid)
        cpu_before = cpu_seconds(proc.pid)

        need_ready = side != "noop"
        finished: set[str] = set()
        all_done = threading.Event()
        t_done = [0.0]

        def watcher() -> None:
            """List, then watch from that version; on any watch error (the
            API server's watch cache can lag: 504 "too large resource
            version"), list again. Bounded by ``timeout``."""
            deadline = time.monotonic() + timeout
            while not all_done.is_set() and time.monotonic() < deadline:
                try:
                    listing = custom.list_namespaced_custom_object(GROUP, VERSION, ns, "functions")
                    objs = listing["items"]
                    rv = listing["metadata"]["resourceVersion"]
                    if see(objs):
                        return
                    w = watch.Watch()
                    for ev in w.stream(
                        custom.list_namespaced_custom_object,
                        GROUP,
                        VERSION,
                        ns,
                        "functions",
                        resource_version=rv,
                        timeout_seconds=20,
                    ):
                        if see([ev["object"]]):
                            w.stop()
                            return
                except Exception as e:  # bounded retry of a best-effort observer
                    print(f"  watch restarted: {e!r}"[:200], file=sys.stderr)
                    time.sleep(0.5)

        def see(objs: list[dict[str, Any]]) -> bool:
            for obj in objs:
                if isinstance(obj, dict) and done(obj, need_ready):
                    finished.add(obj["metadata"]["name"])
            if len(finished) >= count and not all_done.is_set():
                t_done[0] = time.monotonic()
                all_done.set()
            return all_done.is_set()

        watch_thread = threading.Thread(target=watcher, daemon=True)
        watch_thread.start()
        time.sleep(0.5)

        t0 = time.monotonic()
        with ThreadPoolExecutor(workers) as pool:
            list(
                pool.map(
                    lambda i: custom.create_namespaced_custom_object(
                        GROUP, VERSION, ns, "functions", function_body(i)
                    ),
                    range(count),
                )
            )
        t_created = time.monotonic()
        if not all_done.wait(timeout):
            raise SystemExit(f"{side}: only {len(finished)}/{count} done after {timeout}s")
        elapsed = t_done[0] - t0
        time.sleep(1.0)
        rss_after = rss_mb(proc.pid)
        cpu_used = cpu_seconds(proc.pid) - cpu_before
        deployments = 0
        if need_ready:
            deployments = len(apps.list_namespaced_deployment(ns, limit=count + 1).items)
            if deployments != count:
                raise SystemExit(f"{side}: {deployments} Deployments for {count} Functions")
        return {
            "seconds": elapsed,
            "create_seconds": t_created - t0,
            "objects_per_s": count / elapsed,
            "rss_before_mb": rss_before,
            "rss_after_mb": rss_after,
            "rss_growth_mb_per_1000": (rss_after - rss_before) * 1000 / count,
            "deployments": float(deployments),
            "operator_cpu_seconds": cpu_used,
            "quiet_wait_seconds": waited,
        }
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        core.delete_namespace(ns, propagation_policy="Background")
        wait_gone(core, ns, timeout=180)


def wait_gone(core: client.CoreV1Api, ns: str, timeout: float) -> None:
    """Wait for the namespace (and its thousands of objects) to go, so the
    next side does not pay for this one's garbage collection."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            core.read_namespace(ns)
        except ApiException as e:
            if e.status == 404:
                return
            raise
        time.sleep(2)
    print(f"warning: namespace {ns} still terminating after {timeout}s", file=sys.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_ROUNDS", "2")))
    parser.add_argument("--workers", type=int, default=16, help="parallel creates")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument(
        "--only", choices=["noop", "floor", "ember"], help="run one side (for profiling; no ratio)"
    )
    args = parser.parse_args()

    config.load_kube_config(config_file=kubeconfig())
    api = client.ApiClient()
    api.configuration.connection_pool_maxsize = args.workers + 4
    apis = {
        "core": client.CoreV1Api(api),
        "custom": client.CustomObjectsApi(api),
        "apps": client.AppsV1Api(api),
    }
    install_crds(client.ApiextensionsV1Api(api))

    sides = ["noop", "floor", "ember"]
    if args.only:
        sides = [args.only]
    runs: dict[str, list[dict[str, float]]] = {side: [] for side in sides}
    for r in range(args.rounds):
        order = sides if r % 2 == 0 else sides[::-1]
        for side in order:
            result = run_side(side, args.count, args.workers, args.timeout, apis)
            runs[side].append(result)
            print(
                f"  round {r + 1} {side:10s}: {result['seconds']:.1f}s "
                f"({result['objects_per_s']:.1f}/s, creates took {result['create_seconds']:.1f}s),"
                f" RSS {result['rss_before_mb']:.0f} -> {result['rss_after_mb']:.0f} MB,"
                f" operator CPU {result['operator_cpu_seconds']:.1f}s",
                flush=True,
            )

    if args.only:
        return 0

    def med(side: str, key: str) -> float:
        return median([run[key] for run in runs[side]])

    throughput_ratio = ratio(med("ember", "objects_per_s"), med("noop", "objects_per_s"))
    floor_ratio = ratio(med("floor", "objects_per_s"), med("noop", "objects_per_s"))
    ember_of_floor = ratio(med("ember", "objects_per_s"), med("floor", "objects_per_s"))
    growth = med("ember", "rss_growth_mb_per_1000")
    growth_over_noop = growth - med("noop", "rss_growth_mb_per_1000")
    results = {
        "count": args.count,
        "rounds": args.rounds,
        "runs": runs,
        "median": {side: {k: med(side, k) for k in runs[side][0]} for side in runs if runs[side]},
        "throughput_ratio_vs_noop": throughput_ratio,
        "floor_ratio_vs_noop": floor_ratio,
        "ember_ratio_vs_floor": ember_of_floor,
        "rss_growth_mb_per_1000": growth,
        "rss_growth_over_noop_mb_per_1000": growth_over_noop,
        "goals": {"throughput_ratio_min": 0.8, "rss_growth_mb_per_1000_max": 50.0},
        "throughput_goal_met": throughput_ratio >= 0.8,
        "rss_goal_met": growth <= 50.0,
    }
    verdict = {True: "MET", False: "MISSED"}
    than_noop = (
        f"{growth_over_noop:.1f} MB more than"
        if growth_over_noop >= 0
        else f"{-growth_over_noop:.1f} MB less than"
    )
    report(
        "operator_reconcile",
        results,
        [
            f"{args.count} Functions x {args.rounds} rounds (medians)",
            f"ember: {med('ember', 'seconds'):.1f}s to Deployment + Ready, "
            f"{med('ember', 'objects_per_s'):.1f} objects/s, "
            f"RSS +{growth:.1f} MB per 1,000",
            f"noop : {med('noop', 'seconds'):.1f}s to handled, "
            f"{med('noop', 'objects_per_s'):.1f} objects/s, "
            f"RSS +{med('noop', 'rss_growth_mb_per_1000'):.1f} MB per 1,000",
            f"floor: {med('floor', 'seconds'):.1f}s to Deployment + Ready, "
            f"{med('floor', 'objects_per_s'):.1f} objects/s (the four writes alone, no kopf)",
            f"throughput ratio ember/noop: {throughput_ratio:.2f} (goal >= 0.8) "
            f"{verdict[throughput_ratio >= 0.8]}; "
            f"floor/noop {floor_ratio:.2f}, ember/floor {ember_of_floor:.2f}",
            f"RSS growth: {growth:.1f} MB per 1,000, {than_noop} the no-op's "
            f"(goal <= 50) {verdict[growth <= 50.0]}",
        ],
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
