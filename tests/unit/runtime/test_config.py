"""Settings from flags and EMBER_* variables."""

from __future__ import annotations

import pytest

from ember_runtime.config import parse_settings
from ember_runtime.errors import LoadError, LoadFault

pytestmark = pytest.mark.unit


def test_flags_win_over_env() -> None:
    env = {"EMBER_TARGET": "main:handle", "EMBER_PORT": "9000", "EMBER_CONCURRENCY": "7"}
    s = parse_settings(["--port", "8081"], env)
    assert (s.target, s.port, s.concurrency) == ("main:handle", 8081, 7)
    assert s.queue_depth == 7  # defaults to the concurrency
    assert s.function == "main"
    assert s.metrics is True
    assert s.pool_size == 8


def test_every_setting_has_an_env_var() -> None:
    env = {
        "EMBER_TARGET": "m:f",
        "EMBER_SOURCE": "/x/m.py",
        "EMBER_PORT": "1",
        "EMBER_TIMEOUT_SECONDS": "2.5",
        "EMBER_CONCURRENCY": "3",
        "EMBER_QUEUE_DEPTH": "0",
        "EMBER_MAX_BODY_BYTES": "10",
        "EMBER_MAX_HEADER_BYTES": "300",
        "EMBER_FUNCTION": "ns/f",
        "EMBER_METRICS": "off",
        "EMBER_SPARE_WORKERS": "2",
        "EMBER_HOST": "127.0.0.1",
    }
    s = parse_settings([], env)
    assert (s.source, s.timeout_seconds, s.queue_depth, s.max_body_bytes) == ("/x/m.py", 2.5, 0, 10)
    assert (s.function, s.metrics, s.spare_workers, s.host) == ("ns/f", False, 2, "127.0.0.1")


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"EMBER_TARGET": "m:f", "EMBER_CONCURRENCY": "0"},
        {"EMBER_TARGET": "m:f", "EMBER_TIMEOUT_SECONDS": "soon"},
        {"EMBER_TARGET": "m:f", "EMBER_METRICS": "maybe"},
    ],
)
def test_bad_settings_are_a_config_fault(env: dict[str, str]) -> None:
    with pytest.raises(LoadError) as exc:
        parse_settings([], env)
    assert exc.value.fault is LoadFault.INVALID_CONFIG
    assert exc.value.fault.exit_status == 2
