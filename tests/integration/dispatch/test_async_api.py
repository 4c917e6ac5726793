"""The async API end to end: POST /async/... through the gateway, a real
Redis, a dispatcher, the real runtime, and GET for the result."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from ember_operator.gateway.server import Gateway
from tests.integration.dispatch.harness import NS, Rig, route, until
from tests.integration.runtime.runtime_harness import Runtime
from tests.redis_harness import RedisServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


async def test_submit_is_202_and_the_result_is_readable(rig: Rig) -> None:
    rig.route("jobs")
    client = rig.client
    r = await rig.post(
        {"do": "ok", "n": 7, "log": str(rig.log)},
        headers={"x-custom": "kept", "x-ember-attempt": "99"},
    )
    assert r.status_code == 202, r.text
    inv = r.json()["invocationId"]
    assert r.json()["status"] == "queued"
    assert r.headers["x-ember-invocation-id"] == inv
    assert r.headers["location"] == f"/async/{NS}/jobs/{inv}"
    queued = (await client.get(f"/async/{NS}/jobs/{inv}")).json()
    assert queued["status"] == "queued" and queued["attempts"] == 0

    await rig.dispatch()
    done = await rig.final(inv)
    assert done["status"] == "succeeded", done
    assert done["attempts"] == 1 and done["function"] == f"{NS}/jobs"
    result = done["result"]
    assert result["status"] == 200 and result["bodyEncoding"] == "text"
    assert json.loads(result["body"]) == {"ok": True, "n": 7, "echo": None}
    assert result["headers"]["content-type"] == "application/json"
    calls = rig.calls()
    # The function saw the dispatcher's headers, not the client's forged one.
    assert [(c["id"], c["attempt"]) for c in calls] == [(inv, "1")]


async def test_a_queued_invocation_is_found_only_by_its_whole_id(rig: Rig) -> None:
    """Before any attempt there is no record: GET reads the stream entry the
    id names, and the id's random part must match."""
    rig.route("jobs")
    inv = (await rig.post({"do": "ok", "log": str(rig.log)})).json()["invocationId"]
    entry, token = inv.rsplit("-", 1)
    assert len(token) == 16 and int(entry.split("-")[0]) > 0
    queued = (await rig.client.get(f"/async/{NS}/jobs/{inv}")).json()
    assert queued["status"] == "queued" and queued["function"] == f"{NS}/jobs"
    assert queued["createdAt"] is not None and queued["startedAt"] is None
    forged = f"{entry}-{'0' * 16 if token != '0' * 16 else '1' * 16}"
    assert (await rig.client.get(f"/async/{NS}/jobs/{forged}")).status_code == 404
    await rig.dispatch()
    done = await rig.final(inv)
    assert done["status"] == "succeeded" and done["createdAt"] == queued["createdAt"]
    assert done["function"] == f"{NS}/jobs" and done["source"] == "async"


async def test_a_repeated_idempotency_key_is_the_same_invocation(rig: Rig) -> None:
    rig.route("jobs")
    body = {"do": "ok", "log": str(rig.log)}
    headers = {"idempotency-key": "order-42"}
    first = await rig.post(body, headers=headers)
    again = await asyncio.gather(*(rig.post(body, headers=headers) for _ in range(5)))
    assert first.status_code == 202
    inv = first.json()["invocationId"]
    assert {r.status_code for r in again} == {200}
    assert {r.json()["invocationId"] for r in again} == {inv}
    other = await rig.post(body, headers={"idempotency-key": "o-43"})
    assert other.status_code == 202 and other.json()["invocationId"] != inv

    await rig.dispatch()
    await rig.final(inv)
    await rig.final(other.json()["invocationId"])
    assert sorted(c["key"] for c in rig.calls()) == ["o-43", "order-42"]
    late = await rig.post(body, headers=headers)
    assert late.status_code == 200 and late.json() == {"invocationId": inv, "status": "succeeded"}


async def test_refusals_name_the_rule(
    gateway: Gateway, client: httpx.AsyncClient, runtime: Runtime
) -> None:
    route(gateway, "jobs", runtime.port)
    r = await client.post(f"/async/{NS}/nope", json={})
    assert r.status_code == 404 and r.json()["error"] == "Gateway.NotFound"
    r = await client.post(f"/async/{NS}/jobs", content=b"x" * (64 * 1024 + 1))
    assert r.status_code == 413 and r.json()["error"] == "Gateway.PayloadTooLarge"
    assert "EMBER_ASYNC_MAX_BODY_BYTES" in r.json()["message"]
    for bad in ("not a url", "ftp://127.0.0.1/x", "http://127.0.0.1:99999/x", "/relative"):
        r = await client.post(f"/async/{NS}/jobs", json={}, headers={"x-ember-callback-url": bad})
        assert r.status_code == 400 and r.json()["error"] == "Gateway.BadCallbackUrl", (bad, r.text)
    for host in (
        "http://kubernetes.default.svc/x",
        "http://169.254.169.254/",
        "http://example.com/",
    ):
        r = await client.post(f"/async/{NS}/jobs", json={}, headers={"x-ember-callback-url": host})
        assert r.status_code == 400, host
        body = r.json()
        assert body["error"] == "Gateway.CallbackNotAllowed"
        assert (
            "EMBER_ASYNC_CALLBACK_HOSTS" in body["message"] and "*.example.com" in body["message"]
        )
    r = await client.post(
        f"/async/{NS}/jobs",
        json={},
        headers={"x-ember-callback-url": "https://hooks.example.com/r"},
    )
    assert r.status_code == 202
    r = await client.get(f"/async/{NS}/jobs")
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    r = await client.post(f"/async/{NS}/jobs/{r.headers.get('x-request-id', 'x')}")
    assert r.status_code == 405 and r.headers["allow"] == "GET, HEAD"
    r = await client.get(f"/async/{NS}/jobs/0123456789abcdef")
    assert r.status_code == 404 and r.json()["error"] == "Gateway.NotFound"
    assert r.json()["request_id"] == r.headers["x-request-id"]


async def test_the_result_reaches_the_callback_url(rig: Rig) -> None:
    rig.route("jobs")
    got: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    failures = 0

    async def receiver(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal failures
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        body = await reader.readexactly(length)
        if failures == 0:  # the first delivery fails: the dispatcher tries again
            failures += 1
            writer.write(b"HTTP/1.1 503 Busy\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        else:
            got.put_nowait({"head": head.decode(), "body": json.loads(body)})
            writer.write(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(receiver, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        r = await rig.client.post(
            f"/async/{NS}/jobs",
            content=b"\x00\xffbinary",
            headers={
                "content-type": "application/octet-stream",
                "x-ember-callback-url": f"http://127.0.0.1:{port}/done?k=1",
            },
        )
        assert r.status_code == 202, r.text
        inv = r.json()["invocationId"]
        await rig.dispatch()
        delivered = await asyncio.wait_for(got.get(), 15)
    finally:
        server.close()
    assert delivered["head"].startswith("POST /done?k=1 HTTP/1.1")
    assert f"x-ember-invocation-id: {inv}" in delivered["head"].lower()
    payload = delivered["body"]
    assert payload["invocationId"] == inv and payload["status"] == "succeeded"
    assert payload["result"]["status"] == 200
    assert json.loads(payload["result"]["body"]) == {"raw": repr(b"\x00\xffbinary")}
    assert failures == 1


async def test_a_binary_result_is_base64(rig: Rig) -> None:
    rig.route("jobs")
    inv = await rig.submit({"do": "bad"})
    await rig.dispatch()
    done = await rig.final(inv)
    assert done["status"] == "dead-lettered" and done["attempts"] == 1
    assert done["result"]["status"] == 422
    assert "not retried" in done["error"]
    assert base64.b64decode(base64.b64encode(done["result"]["body"].encode()))


async def test_redis_down_is_a_quick_503(
    gateway: Gateway, client: httpx.AsyncClient, runtime: Runtime, redis: RedisServer
) -> None:
    route(gateway, "jobs", runtime.port)
    redis.stop()
    loop = asyncio.get_running_loop()
    for call in (
        client.post(f"/async/{NS}/jobs", json={}),
        client.get(f"/async/{NS}/jobs/0123456789abcdef"),
    ):
        started = loop.time()
        r = await call
        assert r.status_code == 503, r.text
        assert r.json()["error"] == "Gateway.QueueUnavailable"
        assert r.headers["retry-after"] == "1"
        assert loop.time() - started < 4.0  # bounded by the API's Redis timeout
    redis.start()
    r = await until(
        "the API recovers with Redis",
        lambda: client.post(f"/async/{NS}/jobs", json={}),
        within=10,
    )
    assert r.status_code in (202, 503)


async def test_a_callback_receiver_that_hangs_holds_nothing_up(rig: Rig) -> None:
    rig.route("jobs")
    hung: list[asyncio.StreamWriter] = []

    async def never_answers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        hung.append(writer)  # reads nothing, answers nothing

    server = await asyncio.start_server(never_answers, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        first = await rig.submit(
            {"n": 0}, headers={"x-ember-callback-url": f"http://127.0.0.1:{port}/hook"}
        )
        others = [await rig.submit({"n": n}) for n in range(1, 6)]
        d = await rig.dispatch(concurrency=1)
        loop = asyncio.get_running_loop()
        started = loop.time()
        for inv in [first, *others]:
            assert (await rig.final(inv, 10))["status"] == "succeeded"
        # One call at a time, and the hung callback in the background the whole time.
        assert loop.time() - started < 5.0
        await until("the callback connected", lambda: hung, within=5)
        assert len(d.deps.callbacks.tasks) == 1
    finally:
        for w in hung:
            w.close()
        server.close()


async def test_a_chunked_body_is_gathered_and_stored(rig: Rig) -> None:
    """The HTTP core streams a chunked body; the async API gathers it
    (within its limit) and stores it whole."""
    rig.route("jobs")

    async def chunks() -> AsyncIterator[bytes]:
        for part in (b'{"do": "ok", ', b'"echo": "', b"x" * 3000, b'"}'):
            yield part

    r = await rig.post(content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 202, r.text
    await rig.dispatch()
    done = await rig.final(r.json()["invocationId"])
    assert json.loads(done["result"]["body"])["echo"] == "x" * 3000

    async def too_much() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b"y" * 4096  # 80 KiB, over the 64 KiB async limit

    r = await rig.post(content=too_much())
    assert r.status_code == 413 and r.json()["error"] == "Gateway.PayloadTooLarge"
