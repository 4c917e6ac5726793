"""What a connection to a pod that ends without an answer means: retried
only when the pod cannot have read the request (its kernel reset it), a
502 when the pod read it and then went away (it may have run it)."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Iterator

import pytest

from ember_operator.gateway import upstream
from ember_operator.gateway.upstream import UpstreamConn

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(30),
    pytest.mark.filterwarnings("ignore:Overriding the .event_loop_policy. fixture"),
]

REQUEST = b"GET / HTTP/1.1\r\nhost: pod\r\ncontent-length: 0\r\n\r\n"


class Waiter:
    def __init__(self) -> None:
        self.done = asyncio.get_running_loop().create_future()

    def answered(self, conn: UpstreamConn, status: int, headers: object, body: bytes) -> None:
        self.done.set_result(("answered", status))

    def failed(self, conn: UpstreamConn, sent: bool, why: str) -> None:
        self.done.set_result(("failed", sent))


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    yield s
    s.close()


async def pod_side(listener: socket.socket) -> tuple[UpstreamConn, socket.socket]:
    """A pooled connection as the gateway holds it (it carried one call
    already), and the pod's end of it."""
    loop = asyncio.get_running_loop()
    port = listener.getsockname()[1]
    conn = await upstream.connect("127.0.0.1", port, 1 << 20)
    pod, _ = listener.accept()
    first = Waiter()
    conn.send(first, REQUEST, False)
    await loop.run_in_executor(None, pod.recv, 65536)
    pod.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
    assert await asyncio.wait_for(first.done, 5) == ("answered", 200)
    assert conn.alive
    return conn, pod


async def test_a_request_crossing_an_idle_close_is_retried(listener: socket.socket) -> None:
    conn, pod = await pod_side(listener)
    assert conn.transport is not None
    # The pod closes the connection idle; our loop has not seen the FIN yet
    # when the request is written into it (the race a draining pod makes).
    conn.transport.pause_reading()
    pod.close()
    await asyncio.sleep(0.02)
    waiter = Waiter()
    conn.send(waiter, REQUEST, False)
    conn.transport.resume_reading()
    assert await asyncio.wait_for(waiter.done, 5) == ("failed", False)


async def test_a_request_the_pod_never_read_is_retried(listener: socket.socket) -> None:
    conn, pod = await pod_side(listener)
    waiter = Waiter()
    conn.send(waiter, REQUEST, False)
    await asyncio.sleep(0.02)
    pod.close()  # unread bytes in it: the kernel resets the connection
    assert await asyncio.wait_for(waiter.done, 5) == ("failed", False)


@pytest.mark.parametrize("after", [0.0, 0.1])
async def test_a_request_the_pod_read_is_never_retried(
    listener: socket.socket, after: float
) -> None:
    """The pod read the request (it may have run it) and went away without
    answering, at once or later: a failure, not a retry."""
    conn, pod = await pod_side(listener)
    waiter = Waiter()
    conn.send(waiter, REQUEST, False)
    loop = asyncio.get_running_loop()
    got = await loop.run_in_executor(None, pod.recv, 65536)
    assert got == REQUEST
    await asyncio.sleep(after)
    pod.close()
    assert await asyncio.wait_for(waiter.done, 5) == ("failed", True)


async def test_a_pod_that_dies_with_the_request_unread_is_retried(
    listener: socket.socket,
) -> None:
    conn, pod = await pod_side(listener)
    waiter = Waiter()
    conn.send(waiter, REQUEST, False)
    await asyncio.sleep(0.02)
    pod.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    pod.close()  # an abort (as a killed process's unread socket gives)
    assert await asyncio.wait_for(waiter.done, 5) == ("failed", False)


async def test_an_answer_then_close_is_an_answer(listener: socket.socket) -> None:
    conn, pod = await pod_side(listener)
    waiter = Waiter()
    conn.send(waiter, REQUEST, False)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, pod.recv, 65536)
    pod.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
    pod.close()
    assert await asyncio.wait_for(waiter.done, 5) == ("answered", 200)


@pytest.fixture(params=["asyncio", "uvloop"], scope="module")
def event_loop_policy(request: pytest.FixtureRequest) -> asyncio.AbstractEventLoopPolicy:
    """The gateway runs on uvloop: both loops must read the kernel alike."""
    if request.param == "uvloop":
        import uvloop

        return uvloop.EventLoopPolicy()
    return asyncio.DefaultEventLoopPolicy()
