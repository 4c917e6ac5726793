"""How the client reaches the API server: library, credentials, pools.

The transport is ``kubernetes_asyncio`` on kopf's event loop, with responses
kept as JSON (no model (de)serialisation). The ``operator_reconcile``
benchmark chose it: with 1,000 Functions it reached 30.4 objects/s against
28.3 for the blocking client in the loop's thread pool, at the same operator
CPU (17 s) and ~14 MB less RSS.
The client is not the bottleneck; kopf's per-event work and the API server's
writes are. Two details of the client did matter: its session's
``trust_env`` (a proxy and ~/.netrc lookup in a worker thread per request,
16% of operator CPU) and the pool size: at 1,000 Functions, 64 TLS
connections reached 44.7 objects/s at +93 MB RSS, 32 reached 41.1 at +76,
16 only 35.7 at +65 (with fewer connections the operator's requests get a
smaller share of a saturated API server).
"""

from __future__ import annotations

import copy
import os
from typing import Any

import aiohttp
from kubernetes_asyncio import client as k8s_client
from kubernetes_asyncio import config as k8s_config


async def open_clients(pool_size: int = 32) -> tuple[Any, Any]:
    """An API client for requests and one for watches, with in-cluster
    credentials when present, else the current KUBECONFIG. Watches hold a
    connection for minutes each: they get their own pool, so they never take
    one of the requests' connections."""
    configuration = k8s_client.Configuration()
    try:
        k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except k8s_config.ConfigException:
        # Read KUBECONFIG now: the library reads it once, at import time.
        await k8s_config.load_kube_config(
            config_file=os.environ.get("KUBECONFIG") or None,
            client_configuration=configuration,
        )
    watch_configuration = copy.copy(configuration)
    watch_configuration.connection_pool_maxsize = 0  # no limit: one per watch
    configuration.connection_pool_maxsize = pool_size
    api = k8s_client.ApiClient(configuration)
    watch_api = k8s_client.ApiClient(watch_configuration)
    for client in (api, watch_api):
        _no_env_lookups(client)
    return api, watch_api


_PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


def _no_env_lookups(api: Any) -> None:
    """kubernetes_asyncio opens its aiohttp session with ``trust_env=True``,
    which makes every request look up proxies and ~/.netrc in a worker thread
    (16% of the operator's CPU in the benchmark). Use the same connector
    without that, as kopf does by default, unless a proxy is configured
    through the environment."""
    if any(os.environ.get(var) for var in _PROXY_VARS):
        return
    rest = api.rest_client
    old = rest.pool_manager
    rest.pool_manager = aiohttp.ClientSession(
        connector=old.connector, trust_env=False, read_bufsize=2**21
    )
    old.detach()  # the new session owns the connector now
