"""One settings object for the gateway, read from the environment once.

The HTTP limits use the runtime's variable names (``EMBER_HEADER_TIMEOUT_SECONDS``
and the rest): both serve clients with the same core, so one name means one
thing everywhere. The chart maps its values onto exactly these variables.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from ember_operator.config import parse_namespaces
from ember_runtime.http.limits import HttpLimits, connection_budget

# Descriptors kept for the listening sockets, the API watches and logs.
RESERVED_FDS = 64


def _flag(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class GatewaySettings:
    host: str = "0.0.0.0"
    port: int = 8080
    admin_port: int = 9090
    namespaces: tuple[str, ...] = ()  # empty: every namespace (the operator's syntax)
    # Requests held per Function (no pod can take them yet); 503 above.
    queue_size: int = 100
    # Bytes of request bodies held across all Functions; 503 above. With
    # ``queue_size`` this bounds the gateway's memory whatever callers do.
    max_held_bytes: int = 256 * 1024 * 1024
    # How long a held request waits for a pod; 504 after.
    activation_timeout_seconds: float = 60.0
    # Added to a Function's timeoutSeconds before the gateway answers 504:
    # the runtime's own 504 (within 50 ms of the deadline) should win.
    timeout_margin_seconds: float = 5.0
    # How often a new (not yet ready) pod's /_/ready is probed while requests wait.
    probe_interval_seconds: float = 0.025
    # The install secret for call signing (a file); None: calls are not signed.
    signing_secret_file: str | None = None
    # Bodies up to this many bytes, both ways, are passed on whole (one
    # write; a request this small can be sent again to another pod); a
    # longer or chunked body streams through without being held.
    stream_threshold_bytes: int = 64 * 1024
    # Idle pooled connections to pods are closed after this (below the runtime's 75 s).
    upstream_idle_seconds: float = 30.0
    # On SIGTERM: keep serving (answers close their connections) this long
    # while the gateway's Service drops this pod, then stop accepting.
    drain_seconds: float = 5.0
    # One JSON line per request (off: a line costs ~10 µs on the hot path).
    access_log: bool = False
    # Read Functions, Triggers and EndpointSlices from this JSON file instead
    # of the cluster (development and benchmarks); no scaling then.
    feed_file: str | None = None
    log_level: str = "INFO"
    # The HTTP core's limits, as the runtime names them.
    max_header_bytes: int = 16 * 1024
    max_body_bytes: int = 6 * 1024 * 1024
    header_timeout_seconds: float = 10.0
    body_timeout_seconds: float = 60.0
    idle_timeout_seconds: float = 75.0
    max_connections: int = 10_000
    max_pipelined: int = 16
    write_buffer_bytes: int = 256 * 1024
    # The async API (``/async/...``): served when a Redis URL is set
    # (redis:// or rediss:// for TLS; the password apart, from a Secret).
    redis_url: str | None = None
    redis_password: str | None = None
    # Hosts callback URLs may name (comma list; ``*.example.com`` for names
    # below it); empty: no callbacks. A refused one is a 400 at submission.
    async_callback_hosts: str = ""
    # An async request body above this is refused with 413 (it is stored).
    async_max_body_bytes: int = 1024 * 1024
    # How long invocation records and idempotency keys are kept.
    async_retention_seconds: int = 24 * 3600

    def http_limits(self) -> HttpLimits:
        """The core's limits; clients may hold at most half the descriptors
        left, since each call they make takes an upstream connection too."""
        budget = connection_budget(RESERVED_FDS, share=0.5)
        return HttpLimits.from_settings(
            self, connection_budget=budget, stream_threshold=self.stream_threshold_bytes
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> GatewaySettings:
        """Every field from ``EMBER_<FIELD>`` (``EMBER_GATEWAY_FEED_FILE`` for
        ``feed_file``); ``overrides`` win (tests)."""
        env = os.environ if env is None else env
        kwargs: dict[str, Any] = {}
        parsers: dict[str, Callable[[str], Any]] = {
            "int": int,
            "float": float,
            "bool": _flag,
            "str": str,
            "str | None": str,
        }
        for f in fields(cls):
            var = "EMBER_GATEWAY_FEED_FILE" if f.name == "feed_file" else f"EMBER_{f.name.upper()}"
            raw = env.get(var)
            if raw is None or raw == "":
                continue
            if f.name == "namespaces":
                kwargs["namespaces"] = parse_namespaces(raw)
            else:
                try:
                    kwargs[f.name] = parsers[str(f.type)](raw)
                except ValueError as e:
                    raise ValueError(f"{var}={raw!r}: {e}") from e
        kwargs.update(overrides)
        settings = cls(**kwargs)
        problems = [
            msg
            for ok, msg in (
                (settings.queue_size >= 0, "EMBER_QUEUE_SIZE must be >= 0"),
                (settings.activation_timeout_seconds > 0, "activation timeout must be positive"),
                (settings.probe_interval_seconds > 0, "probe interval must be positive"),
                (settings.max_connections >= 1, "EMBER_MAX_CONNECTIONS must be >= 1"),
                (settings.stream_threshold_bytes >= 1, "EMBER_STREAM_THRESHOLD_BYTES must be >= 1"),
            )
            if not ok
        ]
        if problems:
            raise ValueError("; ".join(problems))
        return settings
