"""Config from the environment, and the pure parts of kube.py's policy."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import aiohttp
import kopf
import pytest

from ember_operator import kube
from ember_operator.config import Config

pytestmark = pytest.mark.unit


def test_config_defaults_and_env() -> None:
    default = Config.from_env({})
    assert default.runtime_image == "ember/runtime:dev"
    assert default.clusterwide and default.namespaces == ()
    assert default.gateway_url == "http://ember-gateway.ember-system.svc"
    cfg = Config.from_env(
        {
            "EMBER_RUNTIME_IMAGE": "r:1",
            "EMBER_NAMESPACES": " a, b ,,",
            "EMBER_GATEWAY_URL": "http://gw/",
            "EMBER_DEFAULT_MEMORY_LIMIT": "1Gi",
            "EMBER_MAX_BODY_BYTES": "10",
            "EMBER_RECONCILE_CONCURRENCY": "8",
        }
    )
    assert cfg.runtime_image == "r:1"
    assert cfg.namespaces == ("a", "b") and not cfg.clusterwide
    assert cfg.gateway_url == "http://gw"
    assert cfg.default_resources["limits"]["memory"] == "1Gi"
    assert cfg.default_resources["requests"]["memory"] == "64Mi"
    assert cfg.max_body_bytes == 10
    assert default.reconcile_concurrency == 64 and cfg.reconcile_concurrency == 8


def test_namespace_patterns_stay_one_kopf_pattern() -> None:
    assert Config.from_env({"EMBER_NAMESPACES": "!ember-it-*, !bench-*"}).namespaces == (
        "!ember-it-*, !bench-*",
    )
    assert Config.from_env({"EMBER_NAMESPACES": "  "}).clusterwide


def test_paths() -> None:
    assert kube.path("Deployment", "ns", "x") == "/apis/apps/v1/namespaces/ns/deployments/x"
    assert kube.path("Function", "ns", "f", "status") == (
        "/apis/ember.dev/v1alpha1/namespaces/ns/functions/f/status"
    )
    assert kube.path("ConfigMap", "ns") == "/api/v1/namespaces/ns/configmaps"
    assert kube.path("Deployment", None) == "/apis/apps/v1/deployments"


def test_transient_errors_are_retried_with_delays() -> None:
    conflict = kube.transient(kube.ApiError(409, "{}"), "x")
    assert isinstance(conflict, kopf.TemporaryError) and conflict.delay == kube.CONFLICT_DELAY
    assert kube.transient(kube.ApiError(503, "{}"), "x").delay == kube.TRANSIENT_DELAY
    assert kube.transient(kube.ApiError(403, '{"message": "no"}'), "x").delay == (
        kube.FORBIDDEN_DELAY
    )


def test_merge_for_replace_keeps_server_fields() -> None:
    live = {
        "metadata": {
            "resourceVersion": "7",
            "annotations": {"deployment.kubernetes.io/revision": "3", "ember.dev/spec-hash": "a"},
            "labels": {"extra": "1"},
        },
        "spec": {"clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.1"]},
    }
    desired = {
        "kind": "Service",
        "metadata": {"annotations": {"ember.dev/spec-hash": "b"}, "labels": {"a": "b"}},
        "spec": {"type": "ClusterIP"},
    }
    body = kube._merge_for_replace(live, desired)
    assert body["metadata"]["resourceVersion"] == "7"
    assert body["metadata"]["annotations"] == {
        "deployment.kubernetes.io/revision": "3",
        "ember.dev/spec-hash": "b",
    }
    assert body["metadata"]["labels"] == {"extra": "1", "a": "b"}
    assert body["spec"]["clusterIP"] == "10.0.0.1"
    assert desired["spec"] == {"type": "ClusterIP"}  # not mutated


def test_controller_ref() -> None:
    obj = {"metadata": {"ownerReferences": [{"uid": "u", "controller": True, "kind": "Function"}]}}
    assert kube.controller_uid(obj) == "u"
    assert kube.controller_uid({"metadata": {}}) is None
    assert kube.controlling_function(obj) is None  # no namespace
    obj["metadata"]["namespace"] = "ns"
    obj["metadata"]["ownerReferences"][0]["name"] = "fn"
    key, owner = kube.controlling_function(obj)  # type: ignore[misc]
    assert key == ("ns", "fn") and owner["uid"] == "u"
    obj["metadata"]["ownerReferences"][0]["kind"] = "ReplicaSet"
    assert kube.controlling_function(obj) is None


@pytest.mark.parametrize("proxy", [None, "http://proxy:3128"])
def test_client_session_skips_env_lookups_unless_a_proxy_is_set(
    monkeypatch: pytest.MonkeyPatch, proxy: str | None
) -> None:
    for var in kube._PROXY_VARS:
        monkeypatch.delenv(var, raising=False)
    if proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy)

    async def check() -> None:
        old = aiohttp.ClientSession(trust_env=True)
        connector = old.connector
        api = SimpleNamespace(rest_client=SimpleNamespace(pool_manager=old))
        kube._no_env_lookups(api)
        session = api.rest_client.pool_manager
        assert session.connector is connector  # same pool, same TLS settings
        assert session.trust_env is bool(proxy)
        await session.close()
        assert connector is not None and connector.closed

    asyncio.run(check())


async def test_a_dropped_connection_is_a_temporary_error() -> None:
    """aiohttp's ClientError (a kept-alive connection the server had closed)
    is not an OSError; it must still be retried, not escape as a crash."""
    import aiohttp

    class Dropping:
        async def call_api(self, *args: object, **kwargs: object) -> None:
            raise aiohttp.ServerDisconnectedError()

    with pytest.raises(kopf.TemporaryError) as err:
        await kube.Kube(Dropping()).request("GET", "/api/v1/namespaces")
    assert err.value.delay == kube.TRANSIENT_DELAY
    assert "ServerDisconnected" in str(err.value)
