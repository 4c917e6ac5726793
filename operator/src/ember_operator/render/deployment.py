"""The Deployment that runs a Function's pods.

Pods follow the "restricted" Pod Security Standard: the runtime image runs as
UID 10001, the root filesystem is read-only (``/tmp`` is an emptyDir), and no
service-account token is mounted because function code has no business
talking to the Kubernetes API.

Replicas belong to the autoscaler: ``render_deployment`` sets ``scale.min`` for
the first create, and ``desired_replicas`` only ever moves a live count back
inside ``[scale.min, scale.max]`` after a user edits the bounds.
"""

from __future__ import annotations

from typing import Any

from ember_operator.api.v1alpha1 import Scale
from ember_operator.config import Config
from ember_operator.render.common import FunctionObject, digest, object_meta, stamp
from ember_operator.render.labels import (
    SOURCE_HASH_ANNOTATION,
    function_labels,
    selector_labels,
)
from ember_operator.render.names import (
    CONTAINER_NAME,
    CONTAINER_PORT,
    PORT_NAME,
    SOURCE_DIR,
    SOURCE_KEY,
    SOURCE_VOLUME,
    TMP_VOLUME,
    configmap_name,
    deployment_name,
)
from ember_operator.render.signing import signing_env, signing_pod_annotations
from ember_runtime.pod import HEALTH_PATH, READY_PATH, env_var

RUNTIME_UID = 10001


def desired_replicas(current: int | None, scale: Scale) -> int:
    """The count to write: the autoscaler's, clamped to the user's bounds."""
    if current is None:
        return scale.min
    return max(scale.min, min(current, scale.max))


def runtime_env(fn: FunctionObject, config: Config) -> list[dict[str, Any]]:
    """The runtime's contract; set after the user's list so it always wins."""
    env = [
        {"name": env_var("target"), "value": fn.spec.handler},
        {"name": env_var("port"), "value": str(CONTAINER_PORT)},
        {"name": env_var("timeout_seconds"), "value": str(fn.spec.timeout_seconds)},
        {"name": env_var("concurrency"), "value": str(fn.spec.concurrency)},
        {"name": env_var("function"), "value": f"{fn.namespace}/{fn.name}"},
        {"name": env_var("max_body_bytes"), "value": str(config.max_body_bytes)},
    ]
    if fn.spec.source is not None:
        env.append({"name": env_var("source"), "value": f"{SOURCE_DIR}/{SOURCE_KEY}"})
    return env + signing_env(fn, config)


def resources(fn: FunctionObject, config: Config) -> dict[str, Any]:
    given = fn.spec.resources.to_k8s() if fn.spec.resources is not None else {}
    if given.get("limits") or given.get("requests"):
        return given
    return {kind: dict(values) for kind, values in config.default_resources.items()}


def render_deployment(fn: FunctionObject, config: Config) -> dict[str, Any]:
    volumes: list[dict[str, Any]] = [{"name": TMP_VOLUME, "emptyDir": {"sizeLimit": "64Mi"}}]
    mounts: list[dict[str, Any]] = [{"name": TMP_VOLUME, "mountPath": "/tmp"}]
    pod_annotations: dict[str, str] = signing_pod_annotations(fn, config)
    if fn.spec.source is not None:
        volumes.append(
            {
                "name": SOURCE_VOLUME,
                "configMap": {"name": configmap_name(fn.name), "defaultMode": 0o444},
            }
        )
        mounts.append({"name": SOURCE_VOLUME, "mountPath": SOURCE_DIR, "readOnly": True})
        # The mount does not change when the source does: roll pods on content.
        pod_annotations[SOURCE_HASH_ANNOTATION] = digest(fn.spec.source)

    container = {
        "name": CONTAINER_NAME,
        "image": fn.spec.image or config.runtime_image,
        "imagePullPolicy": config.image_pull_policy,
        "ports": [{"name": PORT_NAME, "containerPort": CONTAINER_PORT, "protocol": "TCP"}],
        "env": [e.to_k8s() for e in fn.spec.env] + runtime_env(fn, config),
        "resources": resources(fn, config),
        "readinessProbe": {
            "httpGet": {"path": READY_PATH, "port": PORT_NAME},
            "periodSeconds": 1,
            "timeoutSeconds": 1,
            "failureThreshold": 1,
        },
        "livenessProbe": {
            "httpGet": {"path": HEALTH_PATH, "port": PORT_NAME},
            "periodSeconds": 10,
            "timeoutSeconds": 2,
            "failureThreshold": 3,
        },
        # The runtime writes its load error (``Runtime.HandlerNotFound: ...``)
        # to /dev/termination-log; the operator reads it from the pod's
        # status. A crash that wrote nothing leaves the log's tail instead.
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
        },
        "volumeMounts": mounts,
    }
    return stamp(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": object_meta(fn, deployment_name(fn.name)),
            "spec": {
                "replicas": desired_replicas(None, fn.spec.scale),
                "selector": {"matchLabels": selector_labels(fn.name)},
                "revisionHistoryLimit": 2,
                "progressDeadlineSeconds": config.progress_deadline_seconds,
                "strategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"},
                },
                "template": {
                    "metadata": {
                        "labels": function_labels(fn.name),
                        "annotations": pod_annotations,
                    },
                    "spec": {
                        "automountServiceAccountToken": False,
                        "enableServiceLinks": False,
                        "securityContext": {
                            "runAsNonRoot": True,
                            "runAsUser": RUNTIME_UID,
                            "runAsGroup": RUNTIME_UID,
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                        "containers": [container],
                        "volumes": volumes,
                    },
                },
            },
        }
    )
