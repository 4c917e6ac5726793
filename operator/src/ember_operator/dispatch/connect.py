"""One way to open Redis for the gateway, the dispatcher and redrive.

Every call is bounded: a Redis that is down or unreachable must turn into
a quick error (the gateway's 503, the dispatcher's retry loop), never a
request that hangs. redis-py's own retries are cut to one quick one, so
the caller's timeout is the whole budget. Blocking reads (``XREADGROUP
BLOCK``) get a client of their own whose socket timeout is longer than
the block.
"""

from __future__ import annotations

from redis.asyncio import Redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

DEFAULT_TIMEOUT = 2.0


def open_redis(
    url: str,
    password: str | None = None,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    max_connections: int | None = None,
) -> Redis:
    """A client from ``redis://`` or ``rediss://`` (TLS) ``url``; the
    password, when given, wins over one in the URL."""
    kwargs: dict[str, object] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": min(timeout, DEFAULT_TIMEOUT),
        "retry": Retry(ExponentialBackoff(cap=0.1, base=0.02), 1),
        "health_check_interval": 30,
    }
    if password:
        kwargs["password"] = password
    if max_connections:
        kwargs["max_connections"] = max_connections
    return Redis.from_url(url, **kwargs)  # type: ignore[arg-type]
