"""The gateway's settings come from the environment, with the runtime's
names for the HTTP limits."""

from __future__ import annotations

import pytest

from ember_operator.gateway.config import GatewaySettings

pytestmark = pytest.mark.unit


def test_defaults_and_environment() -> None:
    assert GatewaySettings.from_env({}).queue_size == 100
    s = GatewaySettings.from_env(
        {
            "EMBER_PORT": "8081",
            "EMBER_ADMIN_PORT": "9091",
            "EMBER_QUEUE_SIZE": "7",
            "EMBER_ACTIVATION_TIMEOUT_SECONDS": "2.5",
            "EMBER_NAMESPACES": "a,b",
            "EMBER_SIGNING_SECRET_FILE": "/s/secret",
            "EMBER_HEADER_TIMEOUT_SECONDS": "3",
            "EMBER_ACCESS_LOG": "true",
            "EMBER_GATEWAY_FEED_FILE": "/f.json",
        }
    )
    assert (s.port, s.admin_port, s.queue_size) == (8081, 9091, 7)
    assert s.activation_timeout_seconds == 2.5 and s.namespaces == ("a", "b")
    assert s.signing_secret_file == "/s/secret" and s.access_log and s.feed_file == "/f.json"
    assert s.http_limits().header_timeout == 3.0


def test_bad_values_say_which_variable() -> None:
    with pytest.raises(ValueError, match="EMBER_QUEUE_SIZE"):
        GatewaySettings.from_env({"EMBER_QUEUE_SIZE": "many"})
    with pytest.raises(ValueError, match="activation timeout"):
        GatewaySettings.from_env({"EMBER_ACTIVATION_TIMEOUT_SECONDS": "0"})


def test_clients_may_hold_at_most_half_the_descriptors_left() -> None:
    """Every call a client makes takes an upstream connection too: a flood
    of clients must leave descriptors for them (the runtime's rule, shared)."""
    import resource

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    limits = GatewaySettings(max_connections=10**9).http_limits()
    assert limits.max_connections == (hard - 64) // 2
    assert GatewaySettings(max_connections=5).http_limits().max_connections == 5
