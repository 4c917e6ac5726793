"""The chart's async pieces: a bundled Redis (restricted pod, append-only
file on a claim, a generated password kept on upgrade) or an external one
(URL, password Secret, CA for rediss://); the dispatcher (restricted, read-only
RBAC, probes and metrics on 9090); the gateway's and operator's settings
for them."""

from __future__ import annotations

import base64
import string
from typing import Any

import pytest

from tests.conftest import run_helm
from tests.unit.test_chart import CHART, render

pytestmark = pytest.mark.unit

Doc = dict[str, Any]


def one(docs: list[Doc], kind: str, suffix: str) -> Doc:
    (doc,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].endswith(suffix)]
    return doc


def named(docs: list[Doc], suffix: str) -> list[Doc]:
    return [d for d in docs if d["metadata"]["name"].endswith(suffix)]


def container(dep: Doc) -> Doc:
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    return dict(c)


def env(dep: Doc) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(dep)["env"]}


def assert_restricted(dep: Doc) -> None:
    """The Pod Security Standard "restricted" profile, and a read-only root."""
    pod = dep["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC")
    assert all("hostPath" not in v for v in pod.get("volumes", []))
    for c in pod["containers"]:
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert not sc.get("privileged")
        assert c["resources"]["limits"] and c["resources"]["requests"]


def test_defaults_install_redis_and_two_dispatchers_wired_to_it() -> None:
    docs = render()
    redis = one(docs, "Deployment", "-redis")
    svc = one(docs, "Service", "-redis")
    assert container(redis)["image"] == "ember/redis:0.1.0"
    assert redis["spec"]["replicas"] == 1 and redis["spec"]["strategy"] == {"type": "Recreate"}
    assert svc["spec"]["ports"] == [{"name": "redis", "port": 6379, "targetPort": "redis"}]
    assert svc["spec"]["selector"]["app.kubernetes.io/component"] == "redis"

    disp = one(docs, "Deployment", "-dispatcher")
    assert disp["spec"]["replicas"] == 2
    labels = disp["spec"]["template"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/component"] == "dispatcher"
    assert disp["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == "dispatcher"
    c = container(disp)
    assert c["command"] == ["python3", "-m", "ember_operator.dispatch"]
    assert c["ports"] == [{"name": "metrics", "containerPort": 9090}]
    assert c["readinessProbe"]["httpGet"] == {"path": "/_/ready", "port": "metrics"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/_/health", "port": "metrics"}

    url = "redis://rel-ember-redis.ember-system.svc:6379/0"
    password = {"secretKeyRef": {"name": "rel-ember-redis", "key": "password"}}
    e = env(disp)
    assert e["EMBER_REDIS_URL"] == url and e["EMBER_REDIS_PASSWORD"] == password
    assert e["EMBER_GATEWAY_URL"] == "http://rel-ember-gateway.ember-system.svc:80"
    assert e["EMBER_METRICS_PORT"] == "9090"
    assert e["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert e["POD_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}

    g = env(one(docs, "Deployment", "-gateway"))
    assert g["EMBER_REDIS_URL"] == url and g["EMBER_REDIS_PASSWORD"] == password
    assert g["EMBER_ASYNC_CALLBACK_HOSTS"] == ""
    assert g["EMBER_ASYNC_MAX_BODY_BYTES"] == "1048576"
    assert g["EMBER_ASYNC_RETENTION_SECONDS"] == "86400"
    assert env(one(docs, "Deployment", "-operator"))["EMBER_DISPATCHER_ENABLED"] == "true"
    # The operator itself never talks to Redis.
    assert "EMBER_REDIS_URL" not in env(one(docs, "Deployment", "-operator"))


def test_the_gateway_takes_its_async_values() -> None:
    docs = render(
        "gateway.async.callbackHosts={hooks.example.com,*.apps.internal,fd00::1}",
        "gateway.async.maxBodyBytes=2048",
        "gateway.async.retentionSeconds=60",
        "operator.watchNamespaces={a,b}",
    )
    g = env(one(docs, "Deployment", "-gateway"))
    assert g["EMBER_ASYNC_CALLBACK_HOSTS"] == "hooks.example.com,*.apps.internal,fd00::1"
    assert g["EMBER_ASYNC_MAX_BODY_BYTES"] == "2048"
    assert g["EMBER_ASYNC_RETENTION_SECONDS"] == "60"
    assert env(one(docs, "Deployment", "-dispatcher"))["EMBER_WATCH_NAMESPACES"] == "a,b"


def test_the_dispatcher_takes_its_retry_values() -> None:
    e = env(one(render(), "Deployment", "-dispatcher"))
    assert (e["EMBER_ASYNC_MAX_RETRIES"], e["EMBER_ASYNC_BACKOFF_INITIAL_SECONDS"]) == ("3", "1")
    assert e["EMBER_ASYNC_BACKOFF_MAX_SECONDS"] == "60"
    assert e["EMBER_ASYNC_VISIBILITY_TIMEOUT_SECONDS"] == "60"
    assert e["EMBER_ASYNC_RETENTION_SECONDS"] == "86400"
    docs = render(
        "dispatcher.async.maxRetries=0",
        "dispatcher.async.backoff.initialSeconds=0.5",
        "dispatcher.async.visibilityTimeoutSeconds=5",
        "gateway.async.retentionSeconds=600",
    )
    e = env(one(docs, "Deployment", "-dispatcher"))
    assert e["EMBER_ASYNC_MAX_RETRIES"] == "0" and e["EMBER_ASYNC_BACKOFF_INITIAL_SECONDS"] == "0.5"
    assert e["EMBER_ASYNC_VISIBILITY_TIMEOUT_SECONDS"] == "5"
    assert e["EMBER_ASYNC_RETENTION_SECONDS"] == "600"


def test_redis_and_dispatcher_pods_are_restricted() -> None:
    docs = render()
    for suffix in ("-redis", "-dispatcher"):
        assert_restricted(one(docs, "Deployment", suffix))
    redis = one(docs, "Deployment", "-redis")
    pod = redis["spec"]["template"]["spec"]
    # Redis needs no API access at all.
    assert pod["automountServiceAccountToken"] is False
    # Its password is never on a command line: the env redis-cli reads too.
    c = container(redis)
    assert "args" not in c and "command" not in c
    assert env(redis)["REDISCLI_AUTH"] == {
        "secretKeyRef": {"name": "rel-ember-redis", "key": "password"}
    }
    assert "PONG" in " ".join(c["readinessProbe"]["exec"]["command"])
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    assert mounts == {"data": "/data", "tmp": "/tmp"}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["data"]["persistentVolumeClaim"] == {"claimName": "rel-ember-redis"}
    assert volumes["tmp"]["emptyDir"]["medium"] == "Memory"
    e = env(redis)
    assert e["REDIS_APPENDFSYNC"] == "everysec" and e["REDIS_MAXMEMORY"] == "400mb"


def test_the_dispatcher_may_only_read_functions_and_triggers() -> None:
    docs = render()
    role = one(docs, "ClusterRole", "-dispatcher")
    assert role["rules"] == [
        {
            "apiGroups": ["ember.dev"],
            "resources": ["functions", "triggers"],
            "verbs": ["get", "list", "watch"],
        }
    ]
    binding = one(docs, "ClusterRoleBinding", "-dispatcher")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    sa = one(docs, "ServiceAccount", "-dispatcher")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": "ember-system"}
    ]
    disp = one(docs, "Deployment", "-dispatcher")
    assert disp["spec"]["template"]["spec"]["serviceAccountName"] == sa["metadata"]["name"]
    # Nothing grants Redis or the dispatcher any other role.
    assert not [d for d in named(docs, "-redis") if d["kind"].endswith("Role")]
    assert len([d for d in named(docs, "-dispatcher") if d["kind"] == "ClusterRole"]) == 1
    pdb = one(docs, "PodDisruptionBudget", "-dispatcher")
    assert pdb["spec"]["minAvailable"] == 1


def test_the_redis_password_is_generated_once_and_looked_up_on_upgrade() -> None:
    docs = render()
    secret = one(docs, "Secret", "-redis")
    assert secret["metadata"]["labels"]["app.kubernetes.io/component"] == "redis"
    password = base64.b64decode(secret["data"]["password"]).decode()
    assert len(password) == 32 and set(password) <= set(string.ascii_letters + string.digits)
    # A fresh install gets a fresh value (`helm template` cannot look up)...
    again = base64.b64decode(one(render(), "Secret", "-redis")["data"]["password"]).decode()
    assert again != password
    # ...and an upgrade keeps the live one: the template reads it back by the
    # same name and key before it generates anything (proved against a real
    # release in tests/e2e/test_async.py).
    source = (CHART / "templates/redis.yaml").read_text()
    assert 'lookup "v1" "Secret" .Release.Namespace $secret' in source
    assert "$password | default (randAlphaNum 32 | b64enc)" in source


def test_persistence_values_shape_the_claim() -> None:
    # Offline (nothing to look up) the default renders a claim of the
    # cluster's default class; at install, a cluster without a default class
    # gets an emptyDir instead (tests/e2e/test_async.py renders that).
    claim = one(render(), "PersistentVolumeClaim", "-redis")
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "1Gi"
    assert "storageClassName" not in claim["spec"]  # the cluster's default class

    claim = one(
        render("redis.persistence.storageClass=-", "redis.persistence.size=5Gi"),
        "PersistentVolumeClaim",
        "-redis",
    )
    assert claim["spec"]["storageClassName"] == ""
    assert claim["spec"]["resources"]["requests"]["storage"] == "5Gi"
    claim = one(render("redis.persistence.storageClass=fast"), "PersistentVolumeClaim", "-redis")
    assert claim["spec"]["storageClassName"] == "fast"

    docs = render("redis.persistence.existingClaim=mine")
    assert not [d for d in docs if d["kind"] == "PersistentVolumeClaim"]
    pod = one(docs, "Deployment", "-redis")["spec"]["template"]["spec"]
    assert {"name": "data", "persistentVolumeClaim": {"claimName": "mine"}} in pod["volumes"]

    docs = render("redis.persistence.enabled=false")
    assert not [d for d in docs if d["kind"] == "PersistentVolumeClaim"]
    pod = one(docs, "Deployment", "-redis")["spec"]["template"]["spec"]
    assert {"name": "data", "emptyDir": {}} in pod["volumes"]


def test_an_external_redis_replaces_the_bundled_one() -> None:
    docs = render(
        "redis.external.url=rediss://redis.example.com:6380/2",
        "redis.external.existingSecret=managed-redis",
        "redis.external.passwordKey=token",
        "redis.external.caSecret=redis-ca",
    )
    assert not named(docs, "-redis"), "no bundled Redis objects with an external one"
    for suffix in ("-gateway", "-dispatcher"):
        dep = one(docs, "Deployment", suffix)
        e = env(dep)
        # The CA reaches redis-py as its ssl_ca_certs connection argument.
        assert e["EMBER_REDIS_URL"] == (
            "rediss://redis.example.com:6380/2?ssl_ca_certs=/var/run/ember/redis-ca/ca.crt"
        )
        assert e["EMBER_REDIS_PASSWORD"] == {
            "secretKeyRef": {"name": "managed-redis", "key": "token"}
        }
        mount = next(m for m in container(dep)["volumeMounts"] if m["name"] == "redis-ca")
        assert mount["mountPath"] == "/var/run/ember/redis-ca" and mount["readOnly"] is True
        vol = next(v for v in dep["spec"]["template"]["spec"]["volumes"] if v["name"] == "redis-ca")
        assert vol["secret"]["secretName"] == "redis-ca"

    # No Secret named: no password variable; no CA: no mount.
    docs = render("redis.external.url=redis://redis.example.com:6379/0")
    for suffix in ("-gateway", "-dispatcher"):
        dep = one(docs, "Deployment", suffix)
        assert env(dep)["EMBER_REDIS_URL"] == "redis://redis.example.com:6379/0"
        assert "EMBER_REDIS_PASSWORD" not in env(dep)
        assert "redis-ca" not in {v["name"] for v in dep["spec"]["template"]["spec"]["volumes"]}


def test_the_ca_joins_a_url_that_already_has_options() -> None:
    docs = render(
        "redis.external.url=rediss://r.example.com:6380/0?ssl_check_hostname=true",
        "redis.external.caSecret=ca",
        "redis.external.caKey=bundle.pem",
    )
    assert env(one(docs, "Deployment", "-gateway"))["EMBER_REDIS_URL"] == (
        "rediss://r.example.com:6380/0?ssl_check_hostname=true"
        "&ssl_ca_certs=/var/run/ember/redis-ca/bundle.pem"
    )


def test_without_a_dispatcher_nothing_of_it_renders() -> None:
    docs = render("dispatcher.enabled=false")
    assert not named(docs, "-dispatcher")
    assert "EMBER_DISPATCHER_ENABLED" not in env(one(docs, "Deployment", "-operator"))
    # The gateway still takes async calls into Redis (they wait for a dispatcher).
    assert "EMBER_REDIS_URL" in env(one(docs, "Deployment", "-gateway"))

    docs = render("dispatcher.enabled=false", "redis.enabled=false")
    assert not named(docs, "-redis")
    g = env(one(docs, "Deployment", "-gateway"))
    assert not [k for k in g if "REDIS" in k or "ASYNC" in k]


def test_without_the_gateway_there_is_no_async_path() -> None:
    docs = render("gateway.enabled=false")
    assert not named(docs, "-redis") and not named(docs, "-dispatcher")
    assert "EMBER_DISPATCHER_ENABLED" not in env(one(docs, "Deployment", "-operator"))


def test_the_redis_image_follows_the_operator_tag_unless_given() -> None:
    redis = one(render("operator.image.tag=t1"), "Deployment", "-redis")
    assert container(redis)["image"] == "ember/redis:t1"
    docs = render("operator.image.tag=t1", "redis.image.tag=r2", "redis.image.repository=my/redis")
    assert container(one(docs, "Deployment", "-redis"))["image"] == "my/redis:r2"


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["redis.enabled=false"], "dispatcher.enabled needs a Redis"),
        (["redis.appendFsync=sometimes"], "appendFsync"),
        (["redis.external.url=http://redis:6379"], "url"),
        (["dispatcher.replicas=0"], "replicas"),
        (["gateway.async.callbackHosts={http://x/}"], "callbackHosts"),
        (["gateway.async.callbackHosts={hooks.example.com:8443}"], "callbackHosts"),
        (["redis.persistence.size=lots"], "size"),
        (["dispatcher.async.backoff.initialSeconds=0"], "initialSeconds"),
    ],
)
def test_bad_async_values_are_refused_naming_the_field(sets: list[str], message: str) -> None:
    args = ["template", "rel", str(CHART)]
    for s in sets:
        args += ["--set", s]
    proc = run_helm(*args)
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr
