"""The operator's one Config, from the environment, and kopf's namespace
patterns as Ember's own watches read them."""

from __future__ import annotations

import pytest
from kopf._cogs.structs.references import match_namespace

from ember_operator.config import Config, namespace_matches

pytestmark = pytest.mark.unit


def test_config_defaults_and_env() -> None:
    default = Config.from_env({})
    assert default.runtime_image == "ember/runtime:dev"
    assert default.clusterwide and default.namespaces == ()
    assert default.gateway_url is None
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


@pytest.mark.parametrize(
    "pattern",
    ["apps", "app*", "!bench-*", "!ember-it-*,!bench-*", "myapp-*, !*-pr-*, *pr-123", "a?c"],
)
@pytest.mark.parametrize(
    "name", ["apps", "app", "bench-1", "ember-it-x", "myapp-pr-123", "myapp-pr-4", "abc", "x"]
)
def test_namespace_patterns_match_as_kopf_matches_them(name: str, pattern: str) -> None:
    assert namespace_matches(name, pattern) == match_namespace(name, pattern)


def test_plain_namespaces_get_their_own_watch_and_patterns_one_filtered() -> None:
    assert Config(namespaces=("a", "b")).plain_namespaces == ("a", "b")
    assert Config().plain_namespaces is None
    patterned = Config(namespaces=("!bench-*",))
    assert patterned.plain_namespaces is None
    assert patterned.watches("team") and not patterned.watches("bench-7")


def test_log_level_and_liveness_come_from_the_config() -> None:
    default = Config.from_env({})
    assert default.log_level == "INFO" and default.liveness_endpoint is None
    cfg = Config.from_env(
        {"EMBER_LOG_LEVEL": "debug", "EMBER_LIVENESS_ENDPOINT": "http://0.0.0.0:8080/healthz"}
    )
    assert cfg.log_level == "DEBUG" and cfg.liveness_endpoint == "http://0.0.0.0:8080/healthz"


def test_no_gateway_url_unless_one_is_configured() -> None:
    assert Config.from_env({}).gateway_url is None
    assert Config.from_env({"EMBER_GATEWAY_URL": "http://gw/"}).gateway_url == "http://gw"


def test_a_dispatcher_is_there_only_when_the_chart_says_so() -> None:
    assert Config.from_env({}).dispatcher_enabled is False
    assert Config.from_env({"EMBER_DISPATCHER_ENABLED": "true"}).dispatcher_enabled is True
    assert Config.from_env({"EMBER_DISPATCHER_ENABLED": "1"}).dispatcher_enabled is True
    assert Config.from_env({"EMBER_DISPATCHER_ENABLED": "false"}).dispatcher_enabled is False
