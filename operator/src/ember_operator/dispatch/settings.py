"""The dispatcher's settings, from the environment once.

Async invocations have no retry settings in the Function API: their
retries use the defaults here (``EMBER_ASYNC_MAX_RETRIES`` and the
backoff). Queue Triggers bring their own (``spec.queue``).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass

from ember_operator.config import parse_namespaces
from ember_operator.dispatch.policy import RetryPolicy


@dataclass(frozen=True)
class DispatchSettings:
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_password: str | None = None
    gateway_url: str = "http://127.0.0.1:8080"
    namespaces: tuple[str, ...] = ()  # empty: every namespace (the operator's syntax)
    consumer: str = ""  # this replica's consumer name (POD_NAME)
    host: str = "0.0.0.0"
    metrics_port: int = 9090
    # Retries of async invocations (queue Triggers set their own).
    max_retries: int = 3
    backoff_initial_seconds: float = 1.0
    backoff_max_seconds: float = 60.0
    # Invocations in flight per Function (async) and per queue Trigger.
    concurrency: int = 10
    # A message held this long by a consumer that stopped answering (its
    # heartbeat stopped) is claimed by another one.
    visibility_timeout_seconds: float = 60.0
    # The longest one call through the gateway may take (the gateway's own
    # 504 comes first for a Function's timeoutSeconds).
    call_timeout_seconds: float = 900.0
    retention_seconds: int = 24 * 3600
    # A result body larger than this is stored truncated.
    max_result_bytes: int = 1024 * 1024
    # On SIGTERM: how long invocations in flight may still finish.
    drain_seconds: float = 30.0
    # Delivered this many times without an answer (consumers dying on it):
    # dead-lettered, so a message that crashes dispatchers cannot loop.
    max_deliveries: int = 10
    # How often every source's delayed retries are checked (a replica also
    # wakes exactly when a retry it scheduled itself is due).
    poll_seconds: float = 1.0
    # Longest blocking read of an idle stream (capped by a quarter of the
    # visibility timeout, so a dead replica's messages are claimed in time):
    # each Function costs each replica two reads per block while idle.
    read_block_seconds: float = 10.0
    redis_timeout_seconds: float = 5.0
    callback_attempts: int = 3
    callback_timeout_seconds: float = 10.0
    # Read Functions and Triggers from this JSON file instead of the cluster
    # (development and benchmarks), as the gateway's EMBER_GATEWAY_FEED_FILE.
    feed_file: str | None = None

    @property
    def async_policy(self) -> RetryPolicy:
        return RetryPolicy(self.max_retries, self.backoff_initial_seconds, self.backoff_max_seconds)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> DispatchSettings:
        env = os.environ if env is None else env

        def get(name: str) -> str | None:
            v = env.get(name)
            return v if v not in (None, "") else None

        kw: dict[str, object] = {}
        plain = {
            "EMBER_REDIS_URL": ("redis_url", str),
            "EMBER_REDIS_PASSWORD": ("redis_password", str),
            "EMBER_GATEWAY_URL": ("gateway_url", str),
            "POD_NAME": ("consumer", str),
            "EMBER_METRICS_HOST": ("host", str),
            "EMBER_METRICS_PORT": ("metrics_port", int),
            "EMBER_ASYNC_MAX_RETRIES": ("max_retries", int),
            "EMBER_ASYNC_BACKOFF_INITIAL_SECONDS": ("backoff_initial_seconds", float),
            "EMBER_ASYNC_BACKOFF_MAX_SECONDS": ("backoff_max_seconds", float),
            "EMBER_ASYNC_CONCURRENCY": ("concurrency", int),
            "EMBER_ASYNC_VISIBILITY_TIMEOUT_SECONDS": ("visibility_timeout_seconds", float),
            "EMBER_ASYNC_CALL_TIMEOUT_SECONDS": ("call_timeout_seconds", float),
            "EMBER_ASYNC_RETENTION_SECONDS": ("retention_seconds", int),
            "EMBER_ASYNC_MAX_RESULT_BYTES": ("max_result_bytes", int),
            "EMBER_ASYNC_DRAIN_SECONDS": ("drain_seconds", float),
            "EMBER_ASYNC_MAX_DELIVERIES": ("max_deliveries", int),
            "EMBER_DISPATCH_FEED_FILE": ("feed_file", str),
        }
        for var, (name, parse) in plain.items():
            raw = get(var)
            if raw is not None:
                try:
                    kw[name] = parse(raw)
                except ValueError as e:
                    raise ValueError(f"{var}={raw!r}: {e}") from e
        raw_ns = get("EMBER_WATCH_NAMESPACES")
        if raw_ns is not None:
            kw["namespaces"] = parse_namespaces(raw_ns)
        if "consumer" not in kw:
            kw["consumer"] = f"{socket.gethostname()}-{os.getpid()}"
        s = cls(**kw)  # type: ignore[arg-type]
        problems = [
            msg
            for ok, msg in (
                (s.max_retries >= 0, "EMBER_ASYNC_MAX_RETRIES must be >= 0"),
                (s.backoff_initial_seconds > 0, "the backoff must be positive"),
                (s.backoff_initial_seconds <= s.backoff_max_seconds, "initial backoff > max"),
                (s.concurrency >= 1, "EMBER_ASYNC_CONCURRENCY must be >= 1"),
                (s.visibility_timeout_seconds > 0, "the visibility timeout must be positive"),
            )
            if not ok
        ]
        if problems:
            raise ValueError("; ".join(problems))
        return s
