"""A lean keep-alive HTTP/1.1 client for the dispatcher's calls to the
gateway: an asyncio protocol around httptools' response parser (the
parser family of the HTTP core), one request at a time per connection,
pooled.

Why not aiohttp (still used for https and for callbacks): at a few
thousand messages a second, its client was about a quarter of the
dispatcher's CPU per message (request and response objects, a payload
writer, a connector), for a call whose every part is known in advance.
The async path's throughput is measured against synchronous calls
(``bench/async_throughput.py``); this is where it got the most back.

A request written on a reused connection that ends without a byte of
answer (the gateway closed it idle as we wrote) is sent once more on a
new one; anything else is the caller's failure to judge.

Deadlines are kept by one sweep over the connections in use (every
``SWEEP_SECONDS`` while any is), not a timer per call: an exchange past its
deadline fails with ``TimeoutError`` and its connection is closed.
"""

from __future__ import annotations

import asyncio
from collections import deque

import httptools

Answer = tuple[int, list[tuple[str, str]], bytes]
SWEEP_SECONDS = 0.1


class _Conn(asyncio.Protocol):
    def __init__(self, max_body: int, loop: asyncio.AbstractEventLoop) -> None:
        self.max_body = max_body
        self.loop = loop
        self.deadline = 0.0
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[Answer] | None = None
        self.headers: list[tuple[str, str]] = []
        self.body: list[bytes] = []
        self.size = 0
        self.got_bytes = False
        self.reusable = False

    # --- asyncio.Protocol -------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as e:
            self._fail(ConnectionError(f"bad answer from the gateway: {e}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._fail(ConnectionError(f"the gateway closed the connection: {exc!r}"))

    # --- httptools callbacks ----------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.decode("latin-1").lower(), value.decode("latin-1")))

    def on_body(self, body: bytes) -> None:
        if self.size <= self.max_body:
            self.body.append(body)
        self.size += len(body)

    def on_message_complete(self) -> None:
        waiter, self.waiter = self.waiter, None
        self.reusable = self.parser.should_keep_alive()
        if waiter is not None and not waiter.done():
            body = b"".join(self.body)[: self.max_body + 1]
            waiter.set_result((self.parser.get_status_code(), self.headers, body))

    # --- the client's side ------------------------------------------------

    def _fail(self, e: Exception) -> None:
        self.reusable = False
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(e)
        if self.transport is not None:
            self.transport.close()

    def send(self, data: bytes) -> asyncio.Future[Answer]:
        assert self.transport is not None
        self.headers, self.body, self.size, self.got_bytes = [], [], 0, False
        self.reusable = False
        self.waiter = self.loop.create_future()
        self.transport.write(data)
        return self.waiter

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class Http1Pool:
    """Pooled connections to one ``host:port``."""

    def __init__(self, host: str, port: int, max_body: int, max_idle: int = 256) -> None:
        self.host, self.port = host, port
        self.max_body = max_body
        self.max_idle = max_idle
        self.idle: deque[_Conn] = deque()
        self.busy: set[_Conn] = set()
        self.host_header = f"{host}:{port}"
        self.loop: asyncio.AbstractEventLoop | None = None
        self._sweep: asyncio.TimerHandle | None = None

    async def _connect(self) -> _Conn:
        assert self.loop is not None
        loop = self.loop
        _, conn = await loop.create_connection(
            lambda: _Conn(self.max_body, loop), self.host, self.port
        )
        return conn

    def request(self, path: str, headers: dict[str, str], body: bytes) -> bytes:
        """The request's bytes: the head built as one string and encoded
        once. A line break inside a value (a queue message's idempotency
        key is the user's data) would start a header of its own: such
        values are sent with spaces instead."""
        lines = [f"POST {path} HTTP/1.1", f"host: {self.host_header}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        lines.append(f"content-length: {len(body)}\r\n\r\n")
        head = "\r\n".join(lines)
        if head.count("\n") + head.count("\r") != 2 * (len(lines) + 1):
            flat = {k: v.replace("\r", " ").replace("\n", " ") for k, v in headers.items()}
            lines[2:-1] = [f"{k}: {v}" for k, v in flat.items()]
            head = "\r\n".join(lines)
        return head.encode("latin-1", "replace") + body

    def _expire(self) -> None:
        """Fail the exchanges past their deadline; again while any is out."""
        assert self.loop is not None
        self._sweep = None
        now = self.loop.time()
        for conn in [c for c in self.busy if c.deadline <= now]:
            self.busy.discard(conn)
            conn._fail(TimeoutError("no answer from the gateway in time"))
        if self.busy:
            self._sweep = self.loop.call_later(SWEEP_SECONDS, self._expire)

    async def post(
        self,
        path: str,
        headers: dict[str, str],
        body: bytes,
        seconds: float,
    ) -> Answer:
        """The answer to one POST, or ``TimeoutError`` after ``seconds``
        (within ``SWEEP_SECONDS``)."""
        if self.loop is None:
            self.loop = asyncio.get_running_loop()
        deadline = self.loop.time() + seconds
        request = self.request(path, headers, body)
        while self.idle:
            conn = self.idle.pop()
            if conn.transport is None or conn.transport.is_closing():
                continue
            try:  # awaited here, not in a helper coroutine: a level less per call
                answer = await self._send(conn, request, deadline)
            except ConnectionError:
                self._failed(conn)
                if conn.got_bytes:
                    raise
                continue  # closed under us before answering: the gateway never read it
            except BaseException:
                self._failed(conn)
                raise
            return self._done(conn, answer)
        async with asyncio.timeout_at(deadline):
            conn = await self._connect()
        try:
            answer = await self._send(conn, request, deadline)
        except BaseException:
            self._failed(conn)
            raise
        return self._done(conn, answer)

    def _send(self, conn: _Conn, request: bytes, deadline: float) -> asyncio.Future[Answer]:
        conn.deadline = deadline
        self.busy.add(conn)
        if self._sweep is None:
            assert self.loop is not None
            self._sweep = self.loop.call_later(SWEEP_SECONDS, self._expire)
        return conn.send(request)

    def _failed(self, conn: _Conn) -> None:
        self.busy.discard(conn)
        conn.close()

    def _done(self, conn: _Conn, answer: Answer) -> Answer:
        self.busy.discard(conn)
        if conn.reusable and len(self.idle) < self.max_idle:
            self.idle.append(conn)
        else:
            conn.close()
        return answer

    def close(self) -> None:
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        while self.idle:
            self.idle.pop().close()


def parse_http_url(url: str) -> tuple[str, int, str] | None:
    """(host, port, path prefix) of a plain ``http://`` URL; None otherwise."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        return None
    return parts.hostname, parts.port or 80, parts.path.rstrip("/")
