"""A Function whose pods become Ready reports Ready with readyReplicas, and
still reports Ready once scaled back to zero. The operator runs in-process
(KopfRunner) against the local cluster, whose node really runs the runtime
image; it watches only this test's namespace."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from kopf.testing import KopfRunner
from kubernetes import client

from tests.kube_helpers import eventually, install_crds

pytestmark = pytest.mark.e2e

GROUP, VERSION = "ember.dev", "v1alpha1"
TAG = os.environ.get("IMAGE_TAG", "dev")


@pytest.fixture
def operator(
    k8s: client.ApiClient, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[KopfRunner]:
    install_crds(k8s)
    monkeypatch.setenv("EMBER_RUNTIME_IMAGE", f"ember/runtime:{TAG}")
    monkeypatch.setenv("EMBER_PROGRESS_DEADLINE_SECONDS", "120")
    args = ["run", "--standalone", "--namespace", namespace, "-m", "ember_operator.handlers"]
    with KopfRunner(args, timeout=60) as runner:
        yield runner
    assert runner.exception is None, runner.output


def ready(obj: dict[str, Any]) -> dict[str, Any] | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c["type"] == "Ready":
            return dict(c)
    return None


def test_function_with_ready_pods_reports_ready(
    k8s: client.ApiClient, namespace: str, operator: KopfRunner
) -> None:
    custom = client.CustomObjectsApi(k8s)
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Function",
        "metadata": {"name": "warm"},
        "spec": {
            "handler": "main:handle",
            "source": "def handle(event, context):\n    return {'ok': True}\n",
            "scale": {"min": 1, "max": 2},
        },
    }
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "functions", body)

    def get() -> dict[str, Any]:
        obj: dict[str, Any] = custom.get_namespaced_custom_object(
            GROUP, VERSION, namespace, "functions", "warm"
        )
        return obj

    def warm_and_ready() -> dict[str, Any] | None:
        obj = get()
        cond = ready(obj)
        if cond and cond["status"] == "True" and obj["status"].get("readyReplicas") == 1:
            return obj
        return None

    obj = eventually(warm_and_ready, timeout=150, what="Function Ready with 1 ready replica")
    assert ready(obj)["reason"] == "MinimumReplicasAvailable"  # type: ignore[index]
    assert obj["status"]["replicas"] == 1
    assert obj["status"]["observedGeneration"] == 1
    pods = (
        client.CoreV1Api(k8s)
        .list_namespaced_pod(namespace, label_selector="ember.dev/function=warm")
        .items
    )
    assert any(
        c.type == "Ready" and c.status == "True" for p in pods for c in p.status.conditions or []
    )

    # The autoscaler scales to zero (after the floor is lowered): still Ready.
    custom.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, "functions", "warm", {"spec": {"scale": {"min": 0, "max": 2}}}
    )
    client.AppsV1Api(k8s).patch_namespaced_deployment_scale(
        "warm", namespace, {"spec": {"replicas": 0}}
    )

    def cold_and_ready() -> dict[str, Any] | None:
        obj = get()
        cond = ready(obj)
        if cond and cond["status"] == "True" and cond["reason"] == "ScaledToZero":
            return obj
        return None

    obj = eventually(cold_and_ready, timeout=90, what="Function Ready while scaled to zero")
    assert obj["status"]["readyReplicas"] == 0


def test_a_function_the_runtime_cannot_load_reports_the_runtimes_own_error(
    k8s: client.ApiClient, namespace: str, operator: KopfRunner
) -> None:
    """``handle`` exists (the apply-time check passes) but is not callable:
    the runtime exits with Runtime.HandlerNotFound, writes it to the
    termination message, and the Function's status carries it in seconds."""
    custom = client.CustomObjectsApi(k8s)
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Function",
        "metadata": {"name": "cannot-load"},
        "spec": {
            "handler": "main:handle",
            "source": "handle = 1\n\ndef helper(event, context):\n    return event\n",
            "scale": {"min": 1, "max": 1},
        },
    }
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "functions", body)

    def load_failed() -> dict[str, Any] | None:
        obj: dict[str, Any] = custom.get_namespaced_custom_object(
            GROUP, VERSION, namespace, "functions", "cannot-load"
        )
        cond = ready(obj)
        return cond if cond and cond["reason"] == "FunctionLoadFailed" else None

    cond = eventually(load_failed, timeout=90, what="Function reporting FunctionLoadFailed")
    assert cond["status"] == "False"
    assert "Runtime.HandlerNotFound" in cond["message"]
    assert "Found: helper" in cond["message"]
