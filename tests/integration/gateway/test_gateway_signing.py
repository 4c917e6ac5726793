"""The gateway signs each call for the pod it goes to, and a real runtime
with the Function's derived key takes it: small and streamed bodies, and a
call retried on a second pod after the first refused the connection (signed
again, for the pod that got it). Straight at the pod, unsigned: 403."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ember_operator.gateway.config import GatewaySettings
from ember_operator.gateway.server import Gateway
from ember_runtime.signing import function_key
from tests.integration.gateway.gateway_harness import endpoint_slice, function
from tests.integration.runtime.runtime_harness import Runtime, start_runtime

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

SECRET = bytes(range(32))


@pytest.fixture(scope="module")
def signed_runtime(module_tmp: Path) -> Iterator[Runtime]:
    key = function_key(SECRET, "t", "app").hex()
    rt = start_runtime(module_tmp, "app.py", function="t/app", signing_key=key)
    yield rt
    rt.stop()


async def test_signed_calls_reach_a_pod_that_demands_them(
    signed_runtime: Runtime, tmp_path: Path, dead_port: int
) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(SECRET)
    settings = GatewaySettings(
        host="127.0.0.1", port=0, admin_port=0, signing_secret_file=str(secret)
    )
    async with Gateway(settings) as gw:
        gw.feed.apply("Function", "ADDED", function("t", "app", concurrency=4))
        gw.feed.apply("EndpointSlice", "ADDED", endpoint_slice("t", "app", dead_port, name="a"))
        gw.feed.apply(
            "EndpointSlice", "ADDED", endpoint_slice("t", "app", signed_runtime.port, name="b")
        )
        body = bytes(range(256)) * 1000  # streamed (over 64 KiB)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.port}", timeout=30) as c:
            for _ in range(6):  # some go to the refusing pod first, then are re-signed
                r = await c.get("/fn/t/app/json?x=1")
                assert r.status_code == 200, r.text
                r = await c.post(
                    "/fn/t/app/digest",
                    content=body,
                    headers={"content-type": "application/octet-stream"},
                )
                assert r.status_code == 200, r.text
                assert r.json()["sha256"] == hashlib.sha256(body).hexdigest()
            r = await c.get(signed_runtime.url + "/json")
    assert r.status_code == 403 and r.json()["error"] == "Runtime.Forbidden"
