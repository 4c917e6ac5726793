"""The harness works end to end: a pod from the runtime image that ``make
images`` built runs on the local cluster, loads inline source from a
ConfigMap under the restricted Pod Security profile, and answers HTTP
through a Service."""

from __future__ import annotations

import httpx
import pytest
from kubernetes import client

from tests.conftest import RUNTIME_IMAGE
from tests.kube_helpers import deployment_ready, eventually

pytestmark = pytest.mark.e2e

SOURCE = """
def handle(event, context):
    return {"echo": event, "method": context.method, "function": context.function}
"""


def _runtime_deployment(namespace: str) -> client.V1Deployment:
    labels = {"app.kubernetes.io/name": "echo"}
    container = client.V1Container(
        name="function",
        image=RUNTIME_IMAGE,
        image_pull_policy="IfNotPresent",
        env=[
            client.V1EnvVar(name="EMBER_TARGET", value="main:handle"),
            client.V1EnvVar(name="EMBER_SOURCE", value="/var/ember/source/main.py"),
            client.V1EnvVar(name="EMBER_FUNCTION", value=f"{namespace}/echo"),
        ],
        ports=[client.V1ContainerPort(name="http", container_port=8080)],
        readiness_probe=client.V1Probe(
            http_get=client.V1HTTPGetAction(path="/_/ready", port="http"), period_seconds=1
        ),
        security_context=client.V1SecurityContext(
            run_as_non_root=True,
            allow_privilege_escalation=False,
            read_only_root_filesystem=True,
            capabilities=client.V1Capabilities(drop=["ALL"]),
            seccomp_profile=client.V1SeccompProfile(type="RuntimeDefault"),
        ),
        volume_mounts=[
            client.V1VolumeMount(name="source", mount_path="/var/ember/source", read_only=True),
            client.V1VolumeMount(name="tmp", mount_path="/tmp"),
        ],
    )
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name="echo", labels=labels),
        spec=client.V1DeploymentSpec(
            replicas=1,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(
                    automount_service_account_token=False,
                    containers=[container],
                    volumes=[
                        client.V1Volume(
                            name="source",
                            config_map=client.V1ConfigMapVolumeSource(name="echo-source"),
                        ),
                        client.V1Volume(name="tmp", empty_dir=client.V1EmptyDirVolumeSource()),
                    ],
                ),
            ),
        ),
    )


def test_runtime_image_serves_through_a_service(k8s, namespace, service_url):
    core, apps = client.CoreV1Api(k8s), client.AppsV1Api(k8s)
    core.create_namespaced_config_map(
        namespace,
        client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="echo-source"), data={"main.py": SOURCE}
        ),
    )
    apps.create_namespaced_deployment(namespace, _runtime_deployment(namespace))
    core.create_namespaced_service(
        namespace,
        client.V1Service(
            metadata=client.V1ObjectMeta(name="echo"),
            spec=client.V1ServiceSpec(
                selector={"app.kubernetes.io/name": "echo"},
                ports=[client.V1ServicePort(name="http", port=80, target_port="http")],
            ),
        ),
    )
    eventually(lambda: deployment_ready(k8s, namespace, "echo"), timeout=120, what="echo pod Ready")

    base = service_url(namespace, "echo")

    def invoke() -> httpx.Response | None:
        r = httpx.post(f"{base}/anything", json={"name": "ember"}, timeout=5)
        return r if r.status_code == 200 else None

    # The Service's endpoints reach kube-proxy's rules shortly after Ready.
    resp = eventually(invoke, timeout=30, what="a 200 through the Service")
    assert resp.json() == {
        "echo": {"name": "ember"},
        "method": "POST",
        "function": f"{namespace}/echo",
    }

    pod = core.list_namespaced_pod(namespace, label_selector="app.kubernetes.io/name=echo").items[0]
    assert pod.status.container_statuses[0].restart_count == 0
    health = httpx.get(f"{base}/_/health", timeout=5)
    assert health.status_code == 200
