"""The client's aiohttp session: no per-request proxy lookups."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import aiohttp
import pytest

from ember_operator.kube import transport

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("proxy", [None, "http://proxy:3128"])
def test_client_session_skips_env_lookups_unless_a_proxy_is_set(
    monkeypatch: pytest.MonkeyPatch, proxy: str | None
) -> None:
    for var in transport._PROXY_VARS:
        monkeypatch.delenv(var, raising=False)
    if proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy)

    async def check() -> None:
        old = aiohttp.ClientSession(trust_env=True)
        connector = old.connector
        api = SimpleNamespace(rest_client=SimpleNamespace(pool_manager=old))
        transport._no_env_lookups(api)
        session = api.rest_client.pool_manager
        assert session.connector is connector  # same pool, same TLS settings
        assert session.trust_env is bool(proxy)
        await session.close()
        assert connector is not None and connector.closed

    asyncio.run(check())
