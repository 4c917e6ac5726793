"""One settings object for the operator, read from the environment once.

Everything a deployer may want to change (which namespaces to watch, which
runtime image to run, the defaults a Function gets when it says nothing) lives
here, so the Helm chart has exactly one place to map values onto, and the
renderers take it as a plain argument instead of reading ``os.environ``.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

DEFAULT_RUNTIME_IMAGE = "ember/runtime:dev"
DEFAULT_MAX_BODY_BYTES = 6 * 1024 * 1024


def _default_resources() -> dict[str, dict[str, str]]:
    return {
        "requests": {"cpu": "50m", "memory": "64Mi"},
        "limits": {"cpu": "1", "memory": "256Mi"},
    }


def parse_namespaces(value: str) -> tuple[str, ...]:
    """``a,b`` watches two namespaces; a value with globs or ``!`` exclusions
    (``!ember-it-*,!bench-*``: everything but tests) stays one kopf pattern,
    because kopf ORs separate patterns and ANDs the parts of one."""
    value = value.strip()
    if not value:
        return ()
    if any(ch in value for ch in "!*?"):
        return (value,)
    return tuple(dict.fromkeys(ns.strip() for ns in value.split(",") if ns.strip()))


def namespace_matches(name: str, pattern: str) -> bool:
    """Whether ``name`` falls under one kopf namespace pattern, by kopf's
    rules, for the watches Ember runs itself: comma-separated globs, left
    to right; ``!glob`` drops a match, a later plain glob brings back only
    what the first glob matched; a leading ``!`` implies a ``*`` before it."""
    globs = [g.strip() for g in pattern.split(",")]
    if globs[0].startswith("!"):
        globs.insert(0, "*")
    first = matched = fnmatch.fnmatchcase(name, globs[0])
    for glob in globs[1:]:
        if glob.startswith("!"):
            matched = matched and not fnmatch.fnmatchcase(name, glob.lstrip("!"))
        else:
            matched = matched or (first and fnmatch.fnmatchcase(name, glob))
    return matched


@dataclass(frozen=True)
class Config:
    runtime_image: str = DEFAULT_RUNTIME_IMAGE
    image_pull_policy: str = "IfNotPresent"
    namespaces: tuple[str, ...] = ()  # empty: every namespace
    # The gateway's base URL, for Function and HTTP Trigger status.url, and
    # the sign that a gateway routes HTTP Triggers (the chart sets it exactly
    # when it installs one, or names an external URL for it). None (the
    # default) reports no URL and HTTP Triggers as not served: a URL nothing
    # answers at would be a lie.
    gateway_url: str | None = None
    # Whether a dispatcher runs in this install (the chart sets it when it
    # installs one): schedule and queue Triggers are reported Ready
    # (Scheduled, Consuming) only then, else TriggerKindNotServed.
    dispatcher_enabled: bool = False
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    default_resources: Mapping[str, Mapping[str, str]] = field(default_factory=_default_resources)
    # A rollout that makes no progress for this long is reported as Failed.
    progress_deadline_seconds: int = 120
    # How often a spec error (say, a missing Secret) is looked at again.
    user_error_retry_seconds: float = 30.0
    # Kubernetes Events for each handler run cost one API call per object;
    # by default only warnings and errors are posted.
    post_info_events: bool = False
    # Function reconciles in flight at once. Each holds its rendered
    # manifests and responses; unbounded, a burst of 1,000 new Functions held
    # them all at once (+7 MB RSS in operator_reconcile) for no throughput:
    # the API connection pool has 32 connections.
    reconcile_concurrency: int = 64
    log_level: str = "INFO"
    # kopf's liveness endpoint (``http://0.0.0.0:8080/healthz``); None: off.
    liveness_endpoint: str | None = None
    # The autoscaler's 2 s tick in this process (EMBER_AUTOSCALER=0: off).
    autoscaler: bool = True
    # Where the gateway Service and its EndpointSlices live (the release
    # namespace; POD_NAMESPACE by default). None: no gateway is found.
    gateway_namespace: str | None = None
    gateway_admin_port: int = 9090  # when the EndpointSlices name no "admin" port
    # Fixed gateway admin addresses (host:port) instead of the EndpointSlices:
    # an operator run outside the cluster, tests.
    autoscaler_gateways: tuple[str, ...] = ()
    # The operator's Prometheus endpoint (the autoscaler's decisions); 0: off.
    metrics_port: int = 0
    # The per-install secret each Function's signing key is derived from
    # (``ember_runtime.signing.function_key``), read from the file the chart
    # mounts. None: calls are not signed, function pods get no key.
    signing_secret: bytes | None = field(default=None, repr=False)

    @property
    def clusterwide(self) -> bool:
        return not self.namespaces

    @property
    def plain_namespaces(self) -> tuple[str, ...] | None:
        """The namespaces by name, or None when one watch must cover every
        namespace (cluster-wide, or a pattern) and ``watches`` filters."""
        if self.clusterwide or any(ch in ns for ns in self.namespaces for ch in "!*?,"):
            return None
        return self.namespaces

    def watches(self, namespace: str) -> bool:
        return self.clusterwide or any(namespace_matches(namespace, p) for p in self.namespaces)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Config:
        env = os.environ if env is None else env
        kwargs: dict[str, Any] = {}
        if env.get("EMBER_RUNTIME_IMAGE"):
            kwargs["runtime_image"] = env["EMBER_RUNTIME_IMAGE"]
        if env.get("EMBER_IMAGE_PULL_POLICY"):
            kwargs["image_pull_policy"] = env["EMBER_IMAGE_PULL_POLICY"]
        kwargs["namespaces"] = parse_namespaces(env.get("EMBER_NAMESPACES", ""))
        if env.get("EMBER_GATEWAY_URL"):
            kwargs["gateway_url"] = env["EMBER_GATEWAY_URL"].rstrip("/")
        dispatcher = env.get("EMBER_DISPATCHER_ENABLED", "").strip().lower()
        kwargs["dispatcher_enabled"] = dispatcher in ("1", "true", "yes")
        if env.get("EMBER_MAX_BODY_BYTES"):
            kwargs["max_body_bytes"] = int(env["EMBER_MAX_BODY_BYTES"])
        resources = _default_resources()
        for kind, var_prefix in (("requests", "REQUEST"), ("limits", "LIMIT")):
            for res in ("cpu", "memory"):
                value = env.get(f"EMBER_DEFAULT_{res.upper()}_{var_prefix}")
                if value:
                    resources[kind][res] = value
        kwargs["default_resources"] = resources
        if env.get("EMBER_PROGRESS_DEADLINE_SECONDS"):
            kwargs["progress_deadline_seconds"] = int(env["EMBER_PROGRESS_DEADLINE_SECONDS"])
        if env.get("EMBER_USER_ERROR_RETRY_SECONDS"):
            kwargs["user_error_retry_seconds"] = float(env["EMBER_USER_ERROR_RETRY_SECONDS"])
        if env.get("EMBER_POST_INFO_EVENTS"):
            kwargs["post_info_events"] = env["EMBER_POST_INFO_EVENTS"].lower() in ("1", "true")
        if env.get("EMBER_RECONCILE_CONCURRENCY"):
            kwargs["reconcile_concurrency"] = max(1, int(env["EMBER_RECONCILE_CONCURRENCY"]))
        kwargs["log_level"] = (env.get("EMBER_LOG_LEVEL") or "INFO").upper()
        kwargs["liveness_endpoint"] = env.get("EMBER_LIVENESS_ENDPOINT") or None
        kwargs["autoscaler"] = env.get("EMBER_AUTOSCALER", "1").lower() not in ("0", "false")
        kwargs["gateway_namespace"] = (
            env.get("EMBER_GATEWAY_NAMESPACE") or env.get("POD_NAMESPACE") or None
        )
        if env.get("EMBER_GATEWAY_ADMIN_PORT"):
            kwargs["gateway_admin_port"] = int(env["EMBER_GATEWAY_ADMIN_PORT"])
        gateways = env.get("EMBER_AUTOSCALER_GATEWAYS", "")
        kwargs["autoscaler_gateways"] = tuple(g.strip() for g in gateways.split(",") if g.strip())
        if env.get("EMBER_METRICS_PORT"):
            kwargs["metrics_port"] = int(env["EMBER_METRICS_PORT"])
        if env.get("EMBER_SIGNING_SECRET_FILE"):
            kwargs["signing_secret"] = read_signing_secret(env["EMBER_SIGNING_SECRET_FILE"])
        return cls(**kwargs)


MIN_SIGNING_SECRET_BYTES = 16


def read_signing_secret(path: str) -> bytes:
    """The install secret, byte for byte (the chart writes 32 random bytes).

    A configured file that is missing or short stops the operator: running
    on without it would leave every function pod unsigned, or unreachable
    through a gateway that signs, without anyone noticing."""
    with open(path, "rb") as f:
        secret = f.read()
    if len(secret) < MIN_SIGNING_SECRET_BYTES:
        raise ValueError(
            f"EMBER_SIGNING_SECRET_FILE {path}: {len(secret)} bytes;"
            f" the install secret needs at least {MIN_SIGNING_SECRET_BYTES}"
        )
    return secret
