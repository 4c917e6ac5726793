"""The operator in-process against the real API server: create, update,
delete, invalid input, restart mid-reconcile, and status from the Deployment."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from kopf.testing import KopfRunner
from kubernetes.client.exceptions import ApiException

from ember_operator.reconcile import function as fn_handlers
from tests.integration.control_plane.kit import Cluster, function, run_operator
from tests.kube_helpers import eventually

pytestmark = pytest.mark.integration

SPEC_HASH = "ember.dev/spec-hash"


def ready_condition(cluster: Cluster, ns: str, name: str) -> dict[str, Any] | None:
    return cluster.condition(cluster.get("functions", ns, name), "Ready")


def wait_status(
    cluster: Cluster, ns: str, name: str, *, ready: str, reason: str, generation: int | None = None
) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        obj = cluster.get("functions", ns, name)
        cond = cluster.condition(obj, "Ready")
        if not cond or cond["status"] != ready or cond["reason"] != reason:
            return None
        if generation is not None and obj and obj["status"].get("observedGeneration") != generation:
            return None
        return obj

    return eventually(probe, timeout=30, what=f"{name} Ready={ready} reason={reason}")


def test_create_update_and_delete(cluster: Cluster, namespace: str, operator: KopfRunner) -> None:
    ns = namespace
    created = cluster.create("functions", ns, function("hello", scale={"min": 0, "max": 3}))
    uid = created["metadata"]["uid"]

    obj = wait_status(cluster, ns, "hello", ready="True", reason="ScaledToZero", generation=1)
    assert obj["status"]["url"] == f"http://gw.test/fn/{ns}/hello"
    assert obj["status"]["replicas"] == 0 and obj["status"]["readyReplicas"] == 0
    progressing = cluster.condition(obj, "Progressing")
    assert progressing is not None and progressing["status"] == "False"

    dep = cluster.deployment(ns, "hello")
    svc = cluster.core.read_namespaced_service("hello", ns)
    cm = cluster.core.read_namespaced_config_map("hello-source", ns)
    for child in (dep, svc, cm):
        (owner,) = child.metadata.owner_references
        assert (owner.kind, owner.uid, owner.controller) == ("Function", uid, True)
        assert child.metadata.labels["ember.dev/function"] == "hello"
        assert child.metadata.labels["app.kubernetes.io/managed-by"] == "ember-operator"
    assert dep.spec.replicas == 0
    assert cm.data["main.py"].startswith("def handle")
    first_hash = dep.metadata.annotations[SPEC_HASH]

    # The autoscaler scales up; an edit must not fight it, but must roll pods.
    cluster.apps.patch_namespaced_deployment_scale(ns and "hello", ns, {"spec": {"replicas": 1}})
    cluster.patch(
        "functions", ns, "hello", {"spec": {"source": "def handle(e, c):\n    return 2\n"}}
    )

    def rolled() -> Any:
        d = cluster.deployment(ns, "hello")
        return d if d.metadata.annotations[SPEC_HASH] != first_hash else None

    dep = eventually(rolled, what="the Deployment's spec hash to change")
    assert dep.spec.replicas == 1
    assert (
        cluster.core.read_namespaced_config_map("hello-source", ns)
        .data["main.py"]
        .endswith("return 2\n")
    )
    eventually(
        lambda: (
            (cluster.get("functions", ns, "hello") or {})
            .get("status", {})
            .get("observedGeneration")
            == 2
        ),
        what="observedGeneration 2",
    )

    # Raising scale.min above the live count lifts it (a floor, not a fight).
    cluster.patch("functions", ns, "hello", {"spec": {"scale": {"min": 2, "max": 3}}})
    eventually(lambda: cluster.deployment(ns, "hello").spec.replicas == 2, what="replicas 2")

    cluster.delete("functions", ns, "hello")

    def gone() -> bool:
        try:
            cluster.core.read_namespaced_service("hello", ns)
            return False
        except ApiException as e:
            return e.status == 404 and cluster.deployment(ns, "hello") is None

    eventually(gone, timeout=60, what="children garbage-collected")


def test_deployment_deleted_by_hand_is_put_back(
    cluster: Cluster, namespace: str, operator: KopfRunner
) -> None:
    """The operator follows Deployments with its own watch (outside kopf):
    a deletion it sees puts the Deployment back, owned by the same Function."""
    ns = namespace
    created = cluster.create("functions", ns, function("again", scale={"min": 0, "max": 1}))
    wait_status(cluster, ns, "again", ready="True", reason="ScaledToZero", generation=1)
    first = cluster.deployment(ns, "again")
    cluster.apps.delete_namespaced_deployment("again", ns)

    def replaced() -> Any:
        d = cluster.deployment(ns, "again")
        return d if d is not None and d.metadata.uid != first.metadata.uid else None

    second = eventually(replaced, what="a new Deployment")
    (owner,) = second.metadata.owner_references
    assert (owner.kind, owner.uid) == ("Function", created["metadata"]["uid"])
    wait_status(cluster, ns, "again", ready="True", reason="ScaledToZero", generation=1)


def test_image_function_has_no_configmap_and_switch_removes_it(
    cluster: Cluster, namespace: str, operator: KopfRunner
) -> None:
    ns = namespace
    cluster.create("functions", ns, function("swap"))
    wait_status(cluster, ns, "swap", ready="True", reason="ScaledToZero")
    cluster.patch("functions", ns, "swap", {"spec": {"source": None, "image": "example/swap:1"}})

    def switched() -> bool:
        d = cluster.deployment(ns, "swap")
        image = d.spec.template.spec.containers[0].image
        try:
            cluster.core.read_namespaced_config_map("swap-source", ns)
            return False
        except ApiException as e:
            return e.status == 404 and image == "example/swap:1"

    eventually(switched, what="image in use and source ConfigMap deleted")


def test_missing_secret_is_a_condition_then_heals(
    cluster: Cluster, namespace: str, operator: KopfRunner
) -> None:
    ns = namespace
    env = [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}}]
    cluster.create("functions", ns, function("needs-secret", env=env))
    obj = wait_status(cluster, ns, "needs-secret", ready="False", reason="SecretNotFound")
    failed = cluster.condition(obj, "Failed")
    assert failed is not None and failed["status"] == "True"
    assert "creds" in failed["message"] and "TOKEN" in failed["message"]
    assert cluster.deployment(ns, "needs-secret") is None

    cluster.core.create_namespaced_secret(
        ns, {"metadata": {"name": "creds"}, "stringData": {"token": "s3cr3t"}}
    )
    wait_status(cluster, ns, "needs-secret", ready="True", reason="ScaledToZero")
    assert cluster.deployment(ns, "needs-secret") is not None
    assert cluster.condition(cluster.get("functions", ns, "needs-secret"), "Failed") is None


def test_name_taken_by_a_foreign_object_is_a_condition(
    cluster: Cluster, namespace: str, operator: KopfRunner
) -> None:
    ns = namespace
    cluster.core.create_namespaced_service(
        ns, {"metadata": {"name": "taken"}, "spec": {"ports": [{"port": 80}]}}
    )
    cluster.create("functions", ns, function("taken"))
    obj = wait_status(cluster, ns, "taken", ready="False", reason="NameConflict")
    assert "Service" in cluster.condition(obj, "Ready")["message"]  # type: ignore[index]
    svc = cluster.core.read_namespaced_service("taken", ns)
    assert not svc.metadata.owner_references  # left alone


def test_an_image_that_cannot_be_pulled_is_named_within_seconds(
    cluster: Cluster, namespace: str, operator: KopfRunner
) -> None:
    """The pod's waiting state says why, long before the rollout deadline."""
    ns = namespace
    cluster.create(
        "functions",
        ns,
        function("broken", image="ember.invalid/nope:0", scale={"min": 1, "max": 1}),
    )
    obj = wait_status(cluster, ns, "broken", ready="False", reason="ImagePullFailed")
    failed = cluster.condition(obj, "Failed")
    assert failed is not None and failed["reason"] == "ImagePullFailed"
    assert "'ember.invalid/nope:0' cannot be pulled" in failed["message"]
    assert obj["status"]["readyReplicas"] == 0


def test_broken_inline_source_is_reported_at_apply_time_even_at_zero(
    cluster: Cluster, namespace: str, operator: KopfRunner
) -> None:
    ns = namespace
    cluster.create("functions", ns, function("typo", source="def handle(event, context)\n"))
    obj = wait_status(cluster, ns, "typo", ready="False", reason="SourceSyntaxError")
    assert cluster.condition(obj, "Failed")["message"].startswith("main.py, line 1")  # type: ignore[index]
    assert cluster.deployment(ns, "typo") is None  # nothing to crash-loop

    cluster.create(
        "functions", ns, function("misnamed", source="def handler(e, c):\n    return e\n")
    )
    obj = wait_status(cluster, ns, "misnamed", ready="False", reason="HandlerNotFound")
    message = cluster.condition(obj, "Ready")["message"]  # type: ignore[index]
    assert "'handle'" in message and message.endswith("Found: handler")

    # The fix is applied as any spec change is.
    cluster.patch("functions", ns, "misnamed", {"spec": {"handler": "main:handler"}})
    wait_status(cluster, ns, "misnamed", ready="True", reason="ScaledToZero", generation=2)


def test_no_url_until_a_gateway_is_configured(
    cluster: Cluster, namespace: str, operator_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EMBER_GATEWAY_URL")
    with run_operator(namespace) as runner:
        cluster.create("functions", namespace, function("plain"))
        obj = wait_status(cluster, namespace, "plain", ready="True", reason="ScaledToZero")
    assert runner.exception is None, runner.output
    assert "url" not in obj["status"]


def test_restart_between_deployment_and_status(
    cluster: Cluster, namespace: str, operator_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kill the operator after it created the Deployment but before it wrote
    status; a new operator must converge on one Deployment and a true status."""
    ns = namespace
    real_report = fn_handlers.report

    async def stuck(*args: Any, **kwargs: Any) -> None:
        await asyncio.Event().wait()  # never returns: the operator dies here

    monkeypatch.setattr(fn_handlers, "report", stuck)
    with run_operator(ns):
        cluster.create("functions", ns, function("phoenix", scale={"min": 0, "max": 2}))
        eventually(lambda: cluster.deployment(ns, "phoenix"), what="Deployment created")
    assert (cluster.get("functions", ns, "phoenix") or {}).get("status") is None

    monkeypatch.setattr(fn_handlers, "report", real_report)
    with run_operator(ns) as runner:
        obj = wait_status(cluster, ns, "phoenix", ready="True", reason="ScaledToZero", generation=1)
    assert runner.exception is None, runner.output
    deployments = cluster.apps.list_namespaced_deployment(
        ns, label_selector="ember.dev/function=phoenix"
    ).items
    assert len(deployments) == 1
    assert obj["status"]["url"].endswith(f"/fn/{ns}/phoenix")
