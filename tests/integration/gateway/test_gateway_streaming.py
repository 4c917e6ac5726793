"""Bodies stream through the gateway both ways, never held whole, and the
slower side paces the faster one.

Each test proves streaming by order of events, not by timing: the pod
sees the first part of an upload before the caller has sent the rest; the
caller reads the first part of an answer before the pod has written the
rest; a side that stops reading stops the other side within a bounded
number of bytes. The pods are real runtime processes, or, where a test
needs a pod that behaves in a way the runtime never does (a chunked or
endless answer, a pod that stops reading), a raw server on loopback.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from ember_operator.gateway.config import GatewaySettings
from ember_operator.gateway.server import Gateway
from tests.integration.gateway.gateway_harness import endpoint_slice, function
from tests.integration.runtime.runtime_harness import Runtime, start_runtime

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

MiB = 1024 * 1024
OCTETS = {"content-type": "application/octet-stream"}
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture
async def gateway() -> AsyncIterator[Gateway]:
    settings = GatewaySettings(
        host="127.0.0.1", port=0, admin_port=0, max_body_bytes=512 * MiB, body_timeout_seconds=5
    )
    async with Gateway(settings) as gw:
        yield gw


def route(gw: Gateway, port: int, name: str = "app", concurrency: int = 4) -> None:
    gw.feed.apply("Function", "ADDED", function("t", name, concurrency=concurrency))
    gw.feed.apply("EndpointSlice", "ADDED", endpoint_slice("t", name, port))


async def raw_pod(handler: Handler) -> tuple[asyncio.Server, int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0, limit=4 * MiB)
    return server, server.sockets[0].getsockname()[1]


async def read_head(reader: asyncio.StreamReader) -> dict[str, str]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")[1:]
    return {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines if ln)}


def pattern(n: int) -> bytes:
    return (bytes(range(256)) * (n // 256 + 1))[:n]


def gw_client(gw: Gateway) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.port}", timeout=30)


async def test_a_large_upload_and_answer_pass_intact(gateway: Gateway, runtime: Runtime) -> None:
    route(gateway, runtime.port)
    body = pattern(3 * MiB + 7)
    async with gw_client(gateway) as c:
        r = await c.post("/fn/t/app/digest", content=body, headers=OCTETS)
        assert r.status_code == 200, r.text
        assert r.json() == {"len": len(body), "sha256": hashlib.sha256(body).hexdigest()}

        async def pieces() -> AsyncIterator[bytes]:  # no length: chunked
            for i in range(0, len(body), 100_000):
                yield body[i : i + 100_000]

        r = await c.post("/fn/t/app/digest", content=pieces(), headers=OCTETS)
        assert r.status_code == 200, r.text
        assert r.json()["sha256"] == hashlib.sha256(body).hexdigest()
        r = await c.get("/fn/t/app/big", params={"n": str(5 * MiB)})
        assert r.status_code == 200 and r.content == pattern(5 * MiB)
        # Small bodies still go whole, on the same kept-alive connections.
        r = await c.post("/fn/t/app/json", json={"a": 1})
        assert r.status_code == 200 and r.json() == {"ok": True, "n": [1, 2]}
    assert gateway.proxy.backends[("t", "app")].inflight == 0


async def test_the_pod_reads_an_upload_before_the_caller_has_sent_it_all(
    gateway: Gateway,
) -> None:
    first_seen = asyncio.Event()

    async def pod(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await read_head(reader)
        assert head["transfer-encoding"] == "chunked" and "content-length" not in head
        await reader.readuntil(b"part-one")
        first_seen.set()
        rest = await reader.readuntil(b"0\r\n\r\n")
        assert b"part-two" in rest
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()

    server, port = await raw_pod(pod)
    route(gateway, port)

    async def upload() -> AsyncIterator[bytes]:
        yield b"part-one" + b"x" * 100_000
        await asyncio.wait_for(first_seen.wait(), 10)  # only once the pod has part one
        yield b"part-two"

    async with server, gw_client(gateway) as c:
        r = await c.post("/fn/t/app/up", content=upload())
    assert r.status_code == 200 and r.text == "ok"


async def test_the_caller_reads_an_answer_before_the_pod_has_written_it_all(
    gateway: Gateway,
) -> None:
    go_on = asyncio.Event()

    async def pod(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        writer.write(b"%x\r\n%b\r\n" % (100_000, b"a" * 100_000))
        await writer.drain()
        await asyncio.wait_for(go_on.wait(), 10)  # only once the caller has part one
        writer.write(b"3\r\nend\r\n0\r\n\r\n")
        await writer.drain()
        await reader.read()

    server, port = await raw_pod(pod)
    route(gateway, port)
    async with server, gw_client(gateway) as c, c.stream("GET", "/fn/t/app/down") as r:
        assert r.status_code == 200 and r.headers["transfer-encoding"] == "chunked"
        got = b""
        async for data in r.aiter_raw():
            got += data
            if len(got) >= 100_000:
                go_on.set()
        assert got == b"a" * 100_000 + b"end"


async def test_a_caller_that_stops_reading_stops_the_pod(gateway: Gateway) -> None:
    """An endless answer to a caller that reads nothing: the pod is blocked
    after a bounded number of bytes (socket buffers and the gateway's write
    buffer), not after the gateway has taken it all into memory."""
    written = 0
    blocked = asyncio.Event()

    async def pod(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal written
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % (1 << 40))
        piece = b"z" * 65536
        try:
            while True:
                writer.write(piece)
                written += len(piece)
                try:
                    await asyncio.wait_for(writer.drain(), 1.0)
                except TimeoutError:
                    blocked.set()
                    await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass

    server, port = await raw_pod(pod)
    route(gateway, port)
    sock = socket.create_connection(("127.0.0.1", gateway.port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    sock.sendall(b"GET /fn/t/app/forever HTTP/1.1\r\nhost: x\r\n\r\n")
    async with server:
        await asyncio.wait_for(blocked.wait(), 20)
        at_block = written
        await asyncio.sleep(0.5)
        assert written == at_block  # still blocked while the caller reads nothing
        assert written < 48 * MiB, f"the gateway took {written / MiB:.0f} MiB in"
        sock.close()  # the caller leaves: the pod's connection goes too
        backend = gateway.proxy.backends[("t", "app")]
        for _ in range(100):
            if backend.inflight == 0:
                break
            await asyncio.sleep(0.05)
        assert backend.inflight == 0


async def test_a_pod_that_stops_reading_stops_the_caller(gateway: Gateway) -> None:
    """The other way: an upload to a pod that reads nothing blocks the
    caller within a bounded number of bytes."""
    release = asyncio.Event()

    async def pod(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        await release.wait()
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    server, port = await raw_pod(pod)
    route(gateway, port)
    sent = 0
    loop = asyncio.get_running_loop()
    sock = socket.create_connection(("127.0.0.1", gateway.port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
    sock.setblocking(False)
    total = 256 * MiB
    head = b"POST /fn/t/app/up HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n\r\n" % total
    await loop.sock_sendall(sock, head)
    piece = b"u" * 65536
    async with server:
        while sent < total:
            try:
                await asyncio.wait_for(loop.sock_sendall(sock, piece), 1.0)
            except TimeoutError:
                break  # blocked: the gateway stopped reading us
            sent += len(piece)
        assert sent < 48 * MiB, f"the gateway read {sent / MiB:.0f} MiB a pod did not take"
        release.set()
        sock.close()


async def test_an_early_answer_ends_an_upload_and_the_gateway_serves_on(
    gateway: Gateway, tmp_path: Path
) -> None:
    """The runtime refuses a body over its limit (413) as soon as it sees the
    length; the caller gets that 413, not a reset, and the next call works."""
    rt = start_runtime(tmp_path, "app.py", max_body_bytes=1 * MiB, function="t/app")
    try:
        route(gateway, rt.port)
        async with gw_client(gateway) as c:
            r = await c.post("/fn/t/app/digest", content=pattern(8 * MiB))
            assert r.status_code == 413, r.text
            assert r.json()["error"] == "Runtime.PayloadTooLarge"
            r = await c.post("/fn/t/app/digest", content=b"small")
            assert r.status_code == 200 and r.json()["len"] == 5
        assert gateway.proxy.backends[("t", "app")].inflight == 0
    finally:
        rt.stop()


async def test_an_oversized_chunked_upload_gets_413_from_the_gateway(runtime: Runtime) -> None:
    settings = GatewaySettings(host="127.0.0.1", port=0, admin_port=0, max_body_bytes=1 * MiB)
    async with Gateway(settings) as gw:
        route(gw, runtime.port)

        async def pieces() -> AsyncIterator[bytes]:
            for _ in range(40):
                yield b"q" * 65536

        async with gw_client(gw) as c:
            r = await c.post("/fn/t/app/digest", content=pieces())
            assert r.status_code == 413 and r.json()["error"] == "Runtime.PayloadTooLarge"
            r = await c.get("/fn/t/app/json")
            assert r.status_code == 200
        assert gw.proxy.backends[("t", "app")].inflight == 0


async def test_a_caller_that_leaves_mid_upload_frees_the_pods_slot(
    gateway: Gateway, runtime: Runtime
) -> None:
    route(gateway, runtime.port)
    sock = socket.create_connection(("127.0.0.1", gateway.port))
    sock.sendall(
        b"POST /fn/t/app/digest HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n\r\n" % (4 * MiB)
        + b"p" * MiB
    )
    backend = gateway.proxy.backends[("t", "app")]
    for _ in range(100):
        if backend.inflight == 1:
            break
        await asyncio.sleep(0.02)
    assert backend.inflight == 1  # the call went out while its body was arriving
    sock.close()
    for _ in range(100):
        if backend.inflight == 0:
            break
        await asyncio.sleep(0.05)
    assert backend.inflight == 0
    async with gw_client(gateway) as c:  # and the pod serves the next call
        r = await c.post("/fn/t/app/digest", content=b"after")
        assert r.status_code == 200 and r.json()["len"] == 5


async def test_an_http10_caller_gets_an_answer_of_unknown_length_until_close(
    gateway: Gateway,
) -> None:
    async def pod(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        writer.write(b"%x\r\n%b\r\n0\r\n\r\n" % (200_000, b"b" * 200_000))
        await writer.drain()
        await reader.read()

    server, port = await raw_pod(pod)
    route(gateway, port)
    async with server:
        reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
        writer.write(b"GET /fn/t/app/old HTTP/1.0\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), 10)  # ends with the connection
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"transfer-encoding" not in head.lower()
    assert b"connection: close" in head.lower() and body == b"b" * 200_000


async def test_a_streamed_upload_is_retried_when_a_pod_refuses_the_connection(
    gateway: Gateway, runtime: Runtime, dead_port: int
) -> None:
    """Nothing reached the refusing pod, and what was read of the body so
    far is still at hand: the call goes to the other pod, whole."""
    gateway.feed.apply("Function", "ADDED", function("t", "app", concurrency=4))
    gateway.feed.apply("EndpointSlice", "ADDED", endpoint_slice("t", "app", dead_port, name="a"))
    gateway.feed.apply("EndpointSlice", "ADDED", endpoint_slice("t", "app", runtime.port, name="b"))
    body = pattern(200_000)
    async with gw_client(gateway) as c:
        for _ in range(4):
            r = await c.post("/fn/t/app/digest", content=body, headers=OCTETS)
            assert r.status_code == 200, r.text
            assert r.json()["sha256"] == hashlib.sha256(body).hexdigest()
