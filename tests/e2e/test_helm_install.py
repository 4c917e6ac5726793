"""Ember as a platform team installs it: the Helm chart from this repo, the
images the Dockerfile built, the operator running in the cluster. A Function
applied with the API becomes a Ready, invocable pod, and a scale-to-zero
Function is Ready with no pods.

The release watches only its own test namespace, so it never competes with
operators that other tests run in-process.
"""

from __future__ import annotations

import os

import httpx
import pytest
from kubernetes import client

from ember_operator.api.v1alpha1 import GROUP, VERSION
from tests.conftest import REPO, run_helm
from tests.kube_helpers import eventually, unique_name

pytestmark = pytest.mark.e2e

TAG = os.environ.get("IMAGE_TAG", "dev")


def helm(*args: str, kubeconfig: str) -> str:
    proc = run_helm("--kubeconfig", kubeconfig, *args, timeout=300)
    assert proc.returncode == 0, f"helm {' '.join(args)} failed:\n{proc.stderr}"
    return proc.stdout


@pytest.fixture
def release(kubeconfig: str, namespace: str, k8s: client.ApiClient):
    name = unique_name("e2e")
    helm(
        "install", name, str(REPO / "charts/ember"), "--namespace", namespace,
        "--set", f"operator.watchNamespaces={{{namespace}}}",
        "--set", f"operator.image.tag={TAG}", "--set", f"runtime.image.tag={TAG}",
        "--set", "operator.logLevel=DEBUG",
        # The operator alone: no gateway, so no signing and no URL to claim
        # (test_gateway.py installs the whole data plane).
        "--set", "gateway.enabled=false", "--set", "signing.enabled=false",
        "--wait", "--timeout", "3m",
        kubeconfig=kubeconfig,
    )  # fmt: skip
    yield name
    helm("uninstall", name, "--namespace", namespace, "--wait", kubeconfig=kubeconfig)


def _function(name: str, min_replicas: int) -> dict[str, object]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Function",
        "metadata": {"name": name},
        "spec": {
            "handler": "main:handle",
            "source": (
                "def handle(event, context):\n    return {'got': event, 'fn': context.function}\n"
            ),
            "scale": {"min": min_replicas, "max": 2},
        },
    }


def _ready(status: dict[str, object]) -> bool:
    conditions = status.get("conditions") or []
    assert isinstance(conditions, list)
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def test_chart_installs_an_operator_that_runs_functions(k8s, namespace, release, service_url):
    objs = client.CustomObjectsApi(k8s)
    apps = client.AppsV1Api(k8s)
    pods = client.CoreV1Api(k8s).list_namespaced_pod(
        namespace, label_selector="app.kubernetes.io/component=operator"
    )
    assert [p.metadata.labels["app.kubernetes.io/instance"] for p in pods.items] == [release]
    assert pods.items[0].spec.security_context.run_as_non_root is True

    objs.create_namespaced_custom_object(
        GROUP, VERSION, namespace, "functions", _function("warm", 1)
    )
    objs.create_namespaced_custom_object(
        GROUP, VERSION, namespace, "functions", _function("idle", 0)
    )

    def status_of(name: str) -> dict[str, object]:
        fn = objs.get_namespaced_custom_object(GROUP, VERSION, namespace, "functions", name)
        return fn.get("status") or {}

    warm = eventually(
        lambda: (s := status_of("warm")) and _ready(s) and s.get("readyReplicas") == 1 and s,
        timeout=180,
        what="Function warm Ready with one ready replica",
    )
    assert "url" not in warm  # installed without a gateway: no URL to claim
    idle = eventually(
        lambda: (s := status_of("idle")) and _ready(s) and s,
        timeout=120,
        what="Function idle Ready at zero replicas",
    )
    assert idle.get("replicas", 0) == 0
    assert apps.read_namespaced_deployment("idle", namespace).spec.replicas == 0

    base = service_url(namespace, "warm")
    resp = eventually(
        lambda: (r := httpx.post(base, json={"n": 1}, timeout=5)).status_code == 200 and r,
        timeout=30,
        what="a 200 from the warm function through its Service",
    )
    assert resp.json() == {"got": {"n": 1}, "fn": f"{namespace}/warm"}
