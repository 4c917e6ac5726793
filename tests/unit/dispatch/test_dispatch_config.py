"""The dispatcher's settings, its sources, and the callback allow-list."""

from __future__ import annotations

import pytest

from ember_operator.dispatch.allowlist import CallbackRefused, check_callback, parse_hosts
from ember_operator.dispatch.policy import RetryPolicy
from ember_operator.dispatch.settings import DispatchSettings
from ember_operator.dispatch.sources import SourceSet, trigger_source

pytestmark = pytest.mark.unit


def test_settings_from_the_environment() -> None:
    s = DispatchSettings.from_env(
        {
            "EMBER_REDIS_URL": "rediss://redis:6380/0",
            "EMBER_REDIS_PASSWORD": "pw",
            "EMBER_GATEWAY_URL": "http://gw:8080",
            "EMBER_WATCH_NAMESPACES": "a, b",
            "POD_NAME": "dispatcher-0",
            "EMBER_METRICS_PORT": "9191",
            "EMBER_ASYNC_MAX_RETRIES": "5",
            "EMBER_ASYNC_BACKOFF_INITIAL_SECONDS": "0.5",
            "EMBER_ASYNC_BACKOFF_MAX_SECONDS": "30",
            "EMBER_ASYNC_CONCURRENCY": "4",
            "EMBER_ASYNC_VISIBILITY_TIMEOUT_SECONDS": "120",
            "EMBER_ASYNC_RETENTION_SECONDS": "3600",
        }
    )
    assert s.redis_url == "rediss://redis:6380/0" and s.redis_password == "pw"
    assert s.namespaces == ("a", "b") and s.consumer == "dispatcher-0"
    assert s.metrics_port == 9191 and s.concurrency == 4
    assert s.async_policy == RetryPolicy(5, 0.5, 30.0)
    assert s.visibility_timeout_seconds == 120.0 and s.retention_seconds == 3600
    assert DispatchSettings.from_env({}).consumer  # hostname-pid when POD_NAME is unset


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"EMBER_ASYNC_MAX_RETRIES": "-1"}, "EMBER_ASYNC_MAX_RETRIES must be >= 0"),
        ({"EMBER_ASYNC_CONCURRENCY": "0"}, "EMBER_ASYNC_CONCURRENCY must be >= 1"),
        (
            {"EMBER_ASYNC_BACKOFF_INITIAL_SECONDS": "9", "EMBER_ASYNC_BACKOFF_MAX_SECONDS": "1"},
            "initial backoff > max",
        ),
        ({"EMBER_METRICS_PORT": "http"}, "EMBER_METRICS_PORT='http'"),
    ],
)
def test_bad_settings_are_refused_by_name(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DispatchSettings.from_env(env)


def test_a_queue_trigger_spec_becomes_a_source() -> None:
    spec = {
        "function": "fn",
        "queue": {
            "stream": "orders",
            "maxRetries": 2,
            "backoff": {"initialSeconds": 3, "maxSeconds": 9},
        },
    }
    s = trigger_source("ns", "tr", spec, concurrency=10)
    assert s is not None
    assert s.main.stream == "orders" and s.main.group == "ember/ns/tr" and s.main.start == "$"
    assert not s.main.owned and s.dead_letters == "orders-dlq"
    assert s.policy == RetryPolicy(2, 3.0, 9.0) and s.concurrency == 10
    spec["queue"] |= {"deadLetterStream": "dead", "concurrency": 2}  # type: ignore[operator]
    s2 = trigger_source("ns", "tr", spec, concurrency=10)
    assert s2 is not None and s2.dead_letters == "dead" and s2.concurrency == 2
    assert trigger_source("ns", "tr", {"function": "fn", "http": {"path": "/x"}}, 10) is None


def test_the_source_set_follows_functions_and_triggers() -> None:
    changes: list[int] = []
    sources = SourceSet(RetryPolicy(), 10, changed=lambda: changes.append(1))
    fn = {"metadata": {"namespace": "ns", "name": "f"}, "spec": {}}
    tr = {
        "metadata": {"namespace": "ns", "name": "t"},
        "spec": {"function": "f", "queue": {"stream": "s"}},
    }
    sources.apply("Function", "ADDED", fn)
    sources.apply("Function", "MODIFIED", fn)  # nothing the dispatcher reads changed
    sources.apply("Trigger", "ADDED", tr)
    assert sorted(sources.sources) == [("function", "ns", "f"), ("trigger", "ns", "t")]
    assert len(changes) == 2
    sources.apply("Trigger", "MODIFIED", {**tr, "spec": {"function": "f", "http": {"path": "/"}}})
    sources.apply("Function", "DELETED", fn)
    assert sources.sources == {} and len(changes) == 4


def test_callback_urls_against_the_allow_list() -> None:
    allowed = parse_hosts(" hooks.example.com, *.corp.internal ,10.0.0.7")
    assert allowed == ("hooks.example.com", "*.corp.internal", "10.0.0.7")
    for ok in (
        "https://hooks.example.com/a?b=1",
        "http://HOOKS.example.com:8443/",
        "http://x.corp.internal/",
        "http://a.b.corp.internal/",
        "http://10.0.0.7:9000/cb",
    ):
        assert check_callback(ok, allowed) == ok
    for refused in (
        "http://corp.internal/",
        "http://evil.com/",
        "http://hooks.example.com.evil/",
        "http://169.254.169.254/latest",
        "http://10.0.0.70/",
    ):
        with pytest.raises(CallbackRefused) as e:
            check_callback(refused, allowed)
        assert not e.value.malformed and "EMBER_ASYNC_CALLBACK_HOSTS" in str(e.value)
    for bad in (
        "",
        "hooks.example.com/x",
        "file:///etc/passwd",
        "http://:80/",
        "http://user:pw@hooks.example.com/",
        "http://hooks.example.com:0x50/",
        "https://" + "a" * 3000,
    ):
        with pytest.raises(CallbackRefused) as e:
            check_callback(bad, allowed)
        assert e.value.malformed, bad
    with pytest.raises(CallbackRefused, match="no callbacks allowed"):
        check_callback("http://hooks.example.com/", ())
