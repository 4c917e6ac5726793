"""Hostile and unlucky clients against real runtime processes: bodies that
blow the stack, worker churn, clients that never read or never finish a
request, connection floods, deep pipelines, and answers that must not carry
a body. Each test starts its own runtime, so one wedged pool cannot spill
into the next test.

Requests on raw sockets always carry ``Host`` (HTTP/1.1 requires it), and
every wait is bounded: a runtime that never answers fails the test with a
message instead of hanging it.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import re
import resource
import select
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.runtime.runtime_harness import Runtime, start_runtime

pytestmark = pytest.mark.integration

MiB = 1024 * 1024
NESTED = b"[" * 50000  # RecursionError, not ValueError, in json.loads
JSON_CT = {"content-type": "application/json"}
OCTET_CT = {"content-type": "application/octet-stream"}
OCTET_LINE = "Content-Type: application/octet-stream"
_STATUS_LINE = re.compile(rb"HTTP/1\.1 (\d{3}) [^\r\n]*")

Start = Callable[..., Runtime]

# Request timers (settings the fix adds; older runtimes ignore them) long
# enough to stay out of tests that hold connections open on purpose.
PATIENT = {
    "header_timeout_seconds": 60,
    "body_timeout_seconds": 60,
    "idle_timeout_seconds": 60,
}


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Start]:
    """``start("hostile.py", concurrency=2, ...)``: a runtime stopped after the test."""
    started: list[Runtime] = []

    def _start(source: str, **settings: Any) -> Runtime:
        rt = start_runtime(tmp_path, source, **settings)
        started.append(rt)
        return rt

    yield _start
    for rt in started:
        rt.stop()


# --- raw HTTP/1.1 ------------------------------------------------------------


def request(method: str, path: str, body: bytes = b"", *headers: str) -> bytes:
    """One request, with ``Host`` and (for bodies and POST/PUT) ``Content-Length``."""
    lines = [f"{method} {path} HTTP/1.1", "Host: test", *headers]
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


@dataclass
class HttpResponse:
    status: int
    headers: list[tuple[str, str]]  # names lower-cased, in order
    body: bytes

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k == name]

    def header(self, name: str) -> str | None:
        values = self.all(name)
        assert len(values) <= 1, f"{len(values)} {name} headers: {self.headers}"
        return values[0] if values else None

    def json(self) -> Any:
        return json.loads(self.body)


class RawConn:
    """A client connection on a raw socket that reads whole responses."""

    def __init__(self, port: int, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = bytearray()

    def __enter__(self) -> RawConn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> None:
        chunk = self.sock.recv(256 * 1024)
        if not chunk:
            raise EOFError(f"connection closed; unparsed bytes: {bytes(self.buf[:200])!r}")
        self.buf += chunk

    def read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def read_response(self, *, head_only: bool = False) -> HttpResponse:
        """Status line, headers and a body sized by its one Content-Length.

        ``head_only`` (an answer to HEAD), 1xx, 204 and 304 have no body,
        whatever their headers say; bytes after the head belong to the
        next response.
        """
        while (end := self.buf.find(b"\r\n\r\n")) < 0:
            self._fill()
        head = bytes(self.buf[:end])
        del self.buf[: end + 4]
        first, *lines = head.split(b"\r\n")
        m = _STATUS_LINE.fullmatch(first)
        assert m, f"not a status line: {first[:200]!r}"
        headers: list[tuple[str, str]] = []
        for line in lines:
            name, sep, value = line.partition(b":")
            assert sep, f"not a header line: {line[:200]!r}"
            headers.append(
                (name.strip().lower().decode("latin-1"), value.strip().decode("latin-1"))
            )
        resp = HttpResponse(int(m.group(1)), headers, b"")
        if head_only or resp.status in (204, 304) or resp.status < 200:
            return resp
        lengths = resp.all("content-length")
        assert len(lengths) == 1, f"want one content-length, got {headers}"
        resp.body = self.read_exact(int(lengths[0]))
        return resp

    def expect_response(self, what: str, **kw: Any) -> HttpResponse:
        """``read_response``, failing the test (not erroring) on a silent server."""
        try:
            return self.read_response(**kw)
        except TimeoutError:
            pytest.fail(f"no answer to {what} within {self.sock.gettimeout()}s")

    def closed_within(self, seconds: float) -> bool:
        """True once the server closes (EOF or reset) with nothing more sent."""
        assert not self.buf, f"unexpected bytes: {bytes(self.buf[:200])!r}"
        self.sock.settimeout(seconds)
        try:
            data = self.sock.recv(4096)
        except TimeoutError:
            return False
        except ConnectionResetError:
            return True
        assert data == b"", f"expected the connection to close, got {data[:200]!r}"
        return True

    def readable_within(self, seconds: float) -> bool:
        if self.buf:
            return True
        readable, _, _ = select.select([self.sock], [], [], seconds)
        return bool(readable)


def fault_code(resp: HttpResponse) -> str:
    return str(resp.json()["error"])


# --- 1. bodies that blow the stack, and worker churn (sync handlers) ---------


def test_deeply_nested_json_is_400_and_kills_no_worker(start: Start) -> None:
    rt = start("hostile.py", concurrency=1, timeout_seconds=5)
    with rt.client(timeout=10) as c:
        pids_before = {c.get("/pid").json()["pid"] for _ in range(4)}
        for _ in range(3):
            r = c.post("/json", content=NESTED, headers=JSON_CT)
            assert r.status_code == 400, r.text
            assert r.json()["error"] == "Runtime.MalformedJSON"
            assert r.json()["request_id"] == r.headers["x-request-id"]
        pids_after = {c.get("/pid").json()["pid"] for _ in range(4)}
    assert pids_after <= pids_before  # the same workers, none replaced
    stats = rt.stats()
    assert (stats["worker_restarts"], stats["inflight"]) == (0, 0), stats


class LoopHog:
    """Keeps the server's event loop busy from a thread: bursts of pipelined
    ``GET /metrics``, each burst answered within one read callback. A busy
    loop is what widens the gap between a replacement worker's hello and
    its request pipe being connected."""

    def __init__(self, port: int, burst: int = 200, max_bursts: int = 1000) -> None:
        self.port = port
        self.burst = burst
        self.max_bursts = max_bursts
        self.bursts = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> LoopHog:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        assert not self._thread.is_alive(), "the load thread did not stop"

    def _run(self) -> None:
        try:
            with RawConn(self.port, timeout=5) as conn:
                burst = request("GET", "/metrics") * self.burst
                while not self._stop.is_set() and self.bursts < self.max_bursts:
                    conn.send(burst)
                    for _ in range(self.burst):
                        assert conn.read_response().status == 200
                    self.bursts += 1
        except BaseException as exc:
            self.error = exc


def test_worker_churn_never_wedges_the_pool(start: Start) -> None:
    """Rounds of 8 parallel calls, 6 of them crashing their worker, while the
    server's loop is kept busy: every call is answered (a replacement worker
    is never handed out before it can take a request), and the pool ends
    idle and ready."""
    concurrency, rounds = 4, 10
    rt = start("hostile.py", concurrency=concurrency, queue_depth=4, timeout_seconds=5, **PATIENT)
    paths = ["/exit", "/json", "/exit", "/exit", "/exit", "/json", "/exit", "/exit"]
    expected = [(500, "Runtime.WorkerCrashed") if p == "/exit" else (200, None) for p in paths]

    async def one_round(c: httpx.AsyncClient) -> list[tuple[int, str | None] | str]:
        calls = [c.post(p, content=b"{}", headers=JSON_CT) for p in paths]
        out: list[tuple[int, str | None] | str] = []
        for r in await asyncio.gather(*calls, return_exceptions=True):
            if isinstance(r, BaseException):
                out.append(repr(r))
            else:
                out.append((r.status_code, r.json().get("error")))
        return out

    async def churn() -> None:
        limits = httpx.Limits(max_connections=16, max_keepalive_connections=16)
        async with httpx.AsyncClient(base_url=rt.url, timeout=3, limits=limits) as c:
            for n in range(rounds):
                got = await one_round(c)
                assert got == expected, f"round {n}: {got}; stats {rt.stats()}"

    with LoopHog(rt.port) as hog:
        asyncio.run(churn())
    assert hog.error is None and hog.bursts > 0, (hog.bursts, hog.error)
    stats = rt.wait_until(lambda s: s["inflight"] == 0 and s["queued"] == 0, timeout=5)
    assert stats["worker_restarts"] == rounds * 6
    assert httpx.get(rt.url + "/_/ready", timeout=5).status_code == 200
    assert httpx.get(rt.url + "/json", timeout=5).json() == {"ok": True, "n": [1, 2]}
    rt.wait_until(lambda s: s["workers"] == concurrency + 1, timeout=5)


# --- 2. async handlers: nothing that escapes may leak a slot -----------------


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        ("GET", "/bad-status", b"", 500, "Runtime.InvalidResponse"),
        ("POST", "/nested", NESTED, 400, "Runtime.MalformedJSON"),
    ],
    ids=["bad-status", "nested-json"],
)
def test_async_failures_are_answered_and_free_their_slot(
    start: Start, method: str, path: str, body: bytes, status: int, code: str
) -> None:
    concurrency = 2
    rt = start("ahostile.py", concurrency=concurrency, queue_depth=2, timeout_seconds=5)
    with rt.client(timeout=3) as c:
        for i in range(2 * concurrency + 1):  # more than the slots there are
            try:
                r = c.request(method, path, content=body, headers=JSON_CT)
            except httpx.TimeoutException:
                pytest.fail(f"call {i} never answered (its slot leaked?); stats {rt.stats()}")
            assert r.status_code == status, r.text
            assert r.json()["error"] == code
            assert r.json()["request_id"] == r.headers["x-request-id"]
        ok = c.post("/ok", content=b'{"a": 1}', headers=JSON_CT)
        assert ok.json() == {"async": True, "event_type": "dict"}
    assert rt.stats()["inflight"] == 0


# --- 3. a client that never reads its answers ---------------------------------


def _rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


def _echo_body(i: int) -> bytes:
    return f"{i:08d}".encode() * (MiB // 8)


def test_unread_pipelined_replies_do_not_grow_the_server(start: Start) -> None:
    """100 pipelined 1 MiB echoes on one connection that reads nothing: the
    server stops reading rather than buffer the answers, and then delivers
    them all in order once the client reads."""
    rt = start(
        "hostile.py",
        concurrency=2,
        timeout_seconds=20,
        max_body_bytes=2 * MiB,
        **PATIENT,  # a paused client is the server's doing here, not the client's
    )
    warm = httpx.post(rt.url + "/echo-bytes", content=_echo_body(0), headers=OCTET_CT)
    assert warm.content == _echo_body(0)
    before = _rss(rt.proc.pid)
    total = 100
    sent: list[int] = [0]
    errors: list[BaseException] = []
    conn = RawConn(rt.port, timeout=20)

    def sender() -> None:
        try:
            for i in range(total):
                conn.send(request("POST", "/echo-bytes", _echo_body(i), OCTET_LINE))
                sent[0] = i + 1
        except OSError as exc:
            errors.append(exc)

    thread = threading.Thread(target=sender, daemon=True)
    thread.start()
    try:
        peak = before
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline and peak - before < 64 * MiB:
            peak = max(peak, _rss(rt.proc.pid))
            time.sleep(0.02)
        growth = peak - before
        assert growth < 64 * MiB, (
            f"server RSS grew {growth / MiB:.0f} MiB while {sent[0]} unread 1 MiB "
            "requests were pipelined"
        )
        for i in range(total):  # now read: every answer, in order
            resp = conn.expect_response(f"pipelined echo {i}")
            assert resp.status == 200, (i, resp.status, resp.body[:200])
            assert resp.body == _echo_body(i), f"answer {i} starts {resp.body[:16]!r}"
        thread.join(10)
        assert not thread.is_alive() and not errors and sent[0] == total, (sent, errors)
    finally:
        conn.close()
        thread.join(10)
    rt.wait_until(lambda s: s["inflight"] == 0, timeout=5)
    assert httpx.get(rt.url + "/json", timeout=5).status_code == 200


# --- 4. slow clients, idle clients, too many clients, too few descriptors ----

TIMEOUTS = {
    "header_timeout_seconds": 0.5,
    "body_timeout_seconds": 0.5,
    "idle_timeout_seconds": 1.0,
}


def test_a_request_head_that_never_ends_gets_408_and_close(start: Start) -> None:
    rt = start("hostile.py", **TIMEOUTS)
    with RawConn(rt.port, timeout=3) as conn:
        conn.send(b"GET /json HTTP/1.1\r\nHost: test\r\n")
        for byte in b"X-Slow: drip":  # trickle, but never end the head
            time.sleep(0.02)
            conn.send(bytes([byte]))
        resp = conn.expect_response("a partial request head")
        assert resp.status == 408, resp
        assert fault_code(resp) == "Runtime.RequestTimeout"
        assert conn.closed_within(3), "the connection stayed open after the 408"
    assert httpx.get(rt.url + "/json", timeout=5).status_code == 200


def test_a_body_shorter_than_its_content_length_gets_408_and_close(start: Start) -> None:
    rt = start("hostile.py", **TIMEOUTS)
    with RawConn(rt.port, timeout=3) as conn:
        head = request("POST", "/echo-bytes", b"", OCTET_LINE)
        conn.send(head.replace(b"Content-Length: 0", b"Content-Length: 100") + b"only ten!!")
        resp = conn.expect_response("a body 90 bytes short")
        assert resp.status == 408, resp
        assert fault_code(resp) == "Runtime.RequestTimeout"
        assert conn.closed_within(3), "the connection stayed open after the 408"
    assert rt.stats()["inflight"] == 0


def test_an_idle_keep_alive_connection_is_closed(start: Start) -> None:
    rt = start("hostile.py", **TIMEOUTS)
    with RawConn(rt.port, timeout=3) as conn:
        conn.send(request("GET", "/json"))
        assert conn.expect_response("GET /json").status == 200
        idle_since = time.monotonic()
        assert conn.closed_within(3), "an idle keep-alive connection stayed open for 3 s"
        assert time.monotonic() - idle_since >= 0.5  # closed for idling, not at once


def test_connections_beyond_the_cap_get_503_and_the_rest_keep_serving(start: Start) -> None:
    cap = 3
    rt = start("hostile.py", max_connections=cap, **PATIENT)
    held = [RawConn(rt.port, timeout=3) for _ in range(cap)]
    try:
        for conn in held:  # each one accepted and served
            conn.send(request("GET", "/json"))
            assert conn.expect_response("GET /json").status == 200
        with RawConn(rt.port, timeout=3) as extra:
            # The 503 may come at once or in answer to a request.
            if not extra.readable_within(0.5):
                extra.send(request("GET", "/json"))
            resp = extra.expect_response("a connection beyond the cap")
            assert resp.status == 503, resp
            assert fault_code(resp) == "Runtime.Unavailable"
            assert extra.closed_within(3), "the connection beyond the cap stayed open"
        for conn in held:
            conn.send(request("GET", "/json"))
            assert conn.expect_response("GET /json").json() == {"ok": True, "n": [1, 2]}
        held.pop().close()
        # One gone, so a new connection is served again (once the server saw the close).
        statuses: list[int] = []
        deadline = time.monotonic() + 3
        while not statuses or (statuses[-1] != 200 and time.monotonic() < deadline):
            time.sleep(0.05)
            with RawConn(rt.port, timeout=3) as conn:
                conn.send(request("GET", "/json"))
                statuses.append(conn.expect_response("GET /json after a close").status)
        assert statuses[-1] == 200, statuses
    finally:
        for conn in held:
            conn.close()


def _fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _limit_nofile(n: int) -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))


def test_running_out_of_descriptors_does_not_break_the_pool_for_good(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connection flood takes every descriptor while a worker dies: once
    the flood is gone, the pool replaces the worker and serves again."""
    nofile = 64
    with monkeypatch.context() as m:
        popen = functools.partial(subprocess.Popen, preexec_fn=lambda: _limit_nofile(nofile))
        m.setattr(subprocess, "Popen", popen)
        rt = start_runtime(tmp_path, "hostile.py", concurrency=2, timeout_seconds=5, **PATIENT)
    flood: list[socket.socket] = []
    try:
        with RawConn(rt.port, timeout=5) as killer:
            killer.send(request("GET", "/json"))  # accepted before the flood
            assert killer.expect_response("GET /json").status == 200
            for _ in range(nofile + 16):
                flood.append(socket.create_connection(("127.0.0.1", rt.port), timeout=5))
            # Let the server accept until it holds all it can.
            last, stable_since = -1, time.monotonic()
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline and time.monotonic() - stable_since < 0.3:
                now = _fd_count(rt.proc.pid)
                if now != last:
                    last, stable_since = now, time.monotonic()
                time.sleep(0.02)
            killer.send(request("GET", "/exit"))
            resp = killer.expect_response("GET /exit")
            assert resp.status == 500 and fault_code(resp) == "Runtime.WorkerCrashed", resp
            time.sleep(0.3)  # the replacement is attempted while descriptors are short
    finally:
        for s in flood:
            s.close()
    try:
        health: httpx.Response | str = "never asked"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                health = httpx.get(rt.url + "/_/health", timeout=2)
                if health.status_code == 200:
                    break
            except httpx.HTTPError as exc:
                health = repr(exc)
            time.sleep(0.1)
        assert isinstance(health, httpx.Response), health
        assert health.status_code == 200, health.text
        with rt.client(timeout=5) as c:
            for _ in range(5):
                assert c.get("/json").json() == {"ok": True, "n": [1, 2]}
        rt.wait_until(lambda s: s["workers"] == 3 and s["inflight"] == 0, timeout=10)
    finally:
        rt.stop()


# --- 5. deep pipelines of control requests ------------------------------------


def test_hundreds_of_pipelined_health_checks_are_all_answered_in_order(start: Start) -> None:
    rt = start("hostile.py", concurrency=2, timeout_seconds=10)
    n = 500
    with RawConn(rt.port, timeout=5) as conn:
        conn.send(request("GET", "/sleep?s=0.5") + request("GET", "/_/health") * n)
        got: list[HttpResponse] = []
        deadline = time.monotonic() + 15
        try:
            while len(got) < n + 1 and time.monotonic() < deadline:
                got.append(conn.read_response())
        except (EOFError, OSError) as exc:
            pytest.fail(f"only {len(got)} of {n + 1} answers arrived: {exc!r}")
    assert len(got) == n + 1
    assert (got[0].status, got[0].json()) == (200, {"slept": "0.5"})
    for i, resp in enumerate(got[1:], 1):
        assert (resp.status, resp.json()) == (200, {"status": "ok"}), (i, resp)
    log = rt.log_path.read_text(errors="replace")
    assert "Traceback" not in log and "RecursionError" not in log, log[-3000:]


# --- 6. answers without a body ------------------------------------------------


def test_head_answer_has_no_body_and_the_next_answer_parses(start: Start) -> None:
    rt = start("hostile.py")
    with RawConn(rt.port, timeout=5) as conn:
        conn.send(request("HEAD", "/json"))
        head = conn.expect_response("HEAD /json", head_only=True)
        assert head.status == 200, head
        conn.send(request("GET", "/json"))
        get = conn.expect_response("GET /json after HEAD")
        assert get.status == 200, get
        assert get.json() == {"ok": True, "n": [1, 2]}
        length = head.header("content-length")
        assert length is None or int(length) == len(get.body), head
        assert not conn.readable_within(0.2), f"stray bytes: {conn.sock.recv(200)!r}"


@pytest.mark.parametrize("status", [204, 304])
def test_no_content_and_not_modified_send_no_body(start: Start, status: int) -> None:
    rt = start("hostile.py")
    with RawConn(rt.port, timeout=5) as conn:
        conn.send(request("GET", f"/status?code={status}"))
        resp = conn.expect_response(f"a {status}")
        assert resp.status == status, resp
        if status == 204:
            assert resp.header("content-length") is None, resp.headers
        conn.send(request("GET", "/json"))
        nxt = conn.expect_response(f"GET /json after a {status}")
        assert (nxt.status, nxt.json()) == (200, {"ok": True, "n": [1, 2]})


def test_a_handler_content_length_does_not_duplicate_the_real_one(start: Start) -> None:
    rt = start("hostile.py")
    with RawConn(rt.port, timeout=5) as conn:
        conn.send(request("GET", "/content-length-0"))
        head = conn.expect_response("GET /content-length-0", head_only=True)
        assert head.status == 200, head
        assert head.all("content-length") == ["3"], head.headers
        assert conn.read_exact(3) == b"abc"
        conn.send(request("GET", "/json"))
        nxt = conn.expect_response("GET /json after it")
        assert (nxt.status, nxt.json()) == (200, {"ok": True, "n": [1, 2]})
