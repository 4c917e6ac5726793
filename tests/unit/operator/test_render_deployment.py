"""The Deployment renderer: runtime contract, restricted PSS, replicas policy."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from ember_operator.api.v1alpha1 import Scale
from ember_operator.config import Config
from ember_operator.render.common import FunctionObject
from ember_operator.render.deployment import desired_replicas, render_deployment
from ember_operator.render.labels import SOURCE_HASH_ANNOTATION, SPEC_HASH_ANNOTATION

pytestmark = pytest.mark.unit

MakeFn = Callable[..., FunctionObject]


def container(dep: dict[str, Any]) -> dict[str, Any]:
    containers = dep["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return dict(containers[0])


def env_of(dep: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(dep)["env"]}


def test_inline_source_runs_runtime_image_with_contract_env(
    make_function: MakeFn, config: Config
) -> None:
    dep = render_deployment(make_function(timeoutSeconds=7, concurrency=3), config)
    c = container(dep)
    assert c["image"] == "ember/runtime:dev"
    assert c["imagePullPolicy"] == "IfNotPresent"
    assert "command" not in c and "args" not in c
    assert c["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert env_of(dep) == {
        "EMBER_TARGET": "main:handle",
        "EMBER_PORT": "8080",
        "EMBER_TIMEOUT_SECONDS": "7",
        "EMBER_CONCURRENCY": "3",
        "EMBER_FUNCTION": "team-a/hello",
        "EMBER_MAX_BODY_BYTES": str(6 * 1024 * 1024),
        "EMBER_SOURCE": "/var/ember/source/main.py",
    }
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    assert mounts["/var/ember/source"]["readOnly"] is True
    volumes = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
    assert volumes["source"]["configMap"]["name"] == "hello-source"
    assert c["readinessProbe"]["httpGet"] == {"path": "/_/ready", "port": "http"}
    assert c["readinessProbe"]["periodSeconds"] == 1
    assert c["livenessProbe"]["httpGet"] == {"path": "/_/health", "port": "http"}


def test_the_runtimes_load_error_reaches_the_pod_status(
    make_function: MakeFn, config: Config
) -> None:
    """The runtime writes its fault to /dev/termination-log (the default
    path); a crash that wrote nothing still leaves the log's tail."""
    (c,) = render_deployment(make_function(), config)["spec"]["template"]["spec"]["containers"]
    assert c["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert "terminationMessagePath" not in c  # the kubelet's default: /dev/termination-log


def test_image_function_uses_its_image_and_no_source(make_function: MakeFn, config: Config) -> None:
    dep = render_deployment(make_function(image="example/hello:1"), config)
    c = container(dep)
    assert c["image"] == "example/hello:1"
    assert "EMBER_SOURCE" not in env_of(dep)
    assert [m["mountPath"] for m in c["volumeMounts"]] == ["/tmp"]
    assert SOURCE_HASH_ANNOTATION not in dep["spec"]["template"]["metadata"]["annotations"]


def test_user_env_comes_first_and_runtime_env_wins(make_function: MakeFn, config: Config) -> None:
    env = [
        {"name": "GREETING", "value": "hi"},
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
    ]
    dep = render_deployment(make_function(env=env), config)
    names = [e["name"] for e in container(dep)["env"]]
    assert names[:2] == ["GREETING", "TOKEN"]
    assert container(dep)["env"][1] == env[1]


def test_restricted_pod_security(make_function: MakeFn, config: Config) -> None:
    dep = render_deployment(make_function(), config)
    pod = dep["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = container(dep)["securityContext"]
    assert sc == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
    }
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes["tmp"]
    assert {"name": "tmp", "mountPath": "/tmp"} in container(dep)["volumeMounts"]


def test_default_resources_only_when_none_given(make_function: MakeFn, config: Config) -> None:
    dep = render_deployment(make_function(), config)
    assert container(dep)["resources"] == {
        "requests": {"cpu": "50m", "memory": "64Mi"},
        "limits": {"cpu": "1", "memory": "256Mi"},
    }
    given = {"limits": {"memory": "128Mi"}}
    dep = render_deployment(make_function(resources=given), config)
    assert container(dep)["resources"] == given


def test_config_overrides_image_and_body_limit(make_function: MakeFn) -> None:
    config = Config(runtime_image="reg.local/runtime:1", max_body_bytes=1024)
    dep = render_deployment(make_function(), config)
    assert container(dep)["image"] == "reg.local/runtime:1"
    assert env_of(dep)["EMBER_MAX_BODY_BYTES"] == "1024"


def test_replicas_start_at_scale_min(make_function: MakeFn, config: Config) -> None:
    assert render_deployment(make_function(), config)["spec"]["replicas"] == 0
    dep = render_deployment(make_function(scale={"min": 2, "max": 4}), config)
    assert dep["spec"]["replicas"] == 2


def test_spec_hash_ignores_replicas_but_tracks_everything_else(
    make_function: MakeFn, config: Config
) -> None:
    def spec_hash(**spec: Any) -> str:
        dep = render_deployment(make_function(**spec), config)
        return str(dep["metadata"]["annotations"][SPEC_HASH_ANNOTATION])

    base = spec_hash()
    assert spec_hash() == base
    assert spec_hash(scale={"min": 3, "max": 5}) == base
    assert spec_hash(timeoutSeconds=99) != base
    assert spec_hash(source="other = 1") != base  # the pod template's source hash


@pytest.mark.parametrize(
    ("current", "low", "high", "expected"),
    [(None, 0, 10, 0), (None, 2, 10, 2), (5, 0, 10, 5), (0, 0, 10, 0), (1, 3, 10, 3), (9, 0, 4, 4)],
)
def test_desired_replicas_keeps_the_autoscalers_count_within_bounds(
    current: int | None, low: int, high: int, expected: int
) -> None:
    assert desired_replicas(current, Scale(min=low, max=high)) == expected


def test_the_runtime_reads_every_variable_the_operator_sets(
    make_function: MakeFn, config: Config
) -> None:
    """Rendered env fed to the runtime's own parser: the two cannot drift."""
    from ember_runtime.config import OPTIONS, parse_settings

    fn = make_function(timeoutSeconds=7, concurrency=3)
    dep = render_deployment(fn, config)
    ours = {k: v for k, v in env_of(dep).items() if k.startswith("EMBER_")}
    known = {var for _name, var, _kind, _help in OPTIONS}
    assert set(ours) <= known, f"variables the runtime does not read: {set(ours) - known}"
    settings = parse_settings([], ours)
    assert settings.target == fn.spec.handler
    assert settings.timeout_seconds == 7 and settings.concurrency == 3
    assert settings.port == container(dep)["ports"][0]["containerPort"]
    assert settings.function == "team-a/hello"
    assert settings.source is not None and settings.source.startswith(
        container(dep)["volumeMounts"][-1]["mountPath"]
    )
    assert settings.max_body_bytes == config.max_body_bytes
