"""Which callback URLs may be called: a chart-level allow-list of hosts.

A callback URL is a way into the cluster's network for whoever can submit
an invocation (SSRF: ``http://kubernetes.default/...``, a cloud metadata
address). So only hosts on the list are called, and a URL that is not
allowed is refused with 400 when the invocation is submitted, never
dropped silently later. Entries are host names or addresses, matched
exactly (case-insensitive), or ``*.example.com`` for any name below
``example.com`` (not ``example.com`` itself). An empty list allows none.
"""

from __future__ import annotations

from urllib.parse import urlsplit

MAX_URL = 2048


def parse_hosts(value: str) -> tuple[str, ...]:
    return tuple(h.strip().lower().rstrip(".") for h in value.split(",") if h.strip())


def host_allowed(host: str, allowed: tuple[str, ...]) -> bool:
    host = host.lower().rstrip(".")
    for rule in allowed:
        if rule.startswith("*."):
            if host.endswith(rule[1:]) and len(host) > len(rule) - 1:
                return True
        elif host == rule:
            return True
    return False


class CallbackRefused(ValueError):
    """``malformed``: the URL itself is bad; else its host is not allowed."""

    def __init__(self, message: str, *, malformed: bool) -> None:
        super().__init__(message)
        self.malformed = malformed


def check_callback(url: str, allowed: tuple[str, ...]) -> str:
    """The URL if it may be called; raises ``CallbackRefused`` saying why not."""
    if len(url) > MAX_URL:
        raise CallbackRefused(f"the callback URL is longer than {MAX_URL}", malformed=True)
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a bad port
    except ValueError as e:
        raise CallbackRefused(f"malformed callback URL: {e}", malformed=True) from e
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CallbackRefused(
            "malformed callback URL: it must be an absolute http:// or https:// URL",
            malformed=True,
        )
    if parts.username or parts.password:
        raise CallbackRefused("malformed callback URL: credentials in it", malformed=True)
    del port
    if not host_allowed(parts.hostname, allowed):
        rule = ", ".join(allowed) if allowed else "(empty: no callbacks allowed)"
        raise CallbackRefused(
            f"callback host {parts.hostname!r} is not on the allow-list"
            f" (EMBER_ASYNC_CALLBACK_HOSTS: {rule})",
            malformed=False,
        )
    return url
