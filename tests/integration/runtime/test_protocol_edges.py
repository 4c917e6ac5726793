"""HTTP edge cases on raw sockets, and what a handler's own processes and
logs must not be able to do to the server: trailers, pipelines cut by a
malformed request, slow oversized heads, Host rules, odd request targets,
half-closed clients, processes forked by a handler, a log reader that does
not read, and worker recycling."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.runtime.runtime_harness import (
    BOOT_TIMEOUT,
    FUNCTIONS,
    Runtime,
    free_port,
    start_runtime,
)

pytestmark = pytest.mark.integration

MAX_HEADER_BYTES = 2048


# --- raw HTTP helpers ------------------------------------------------------


class Peer:
    """A raw client connection that reads whole HTTP/1.1 responses.

    Every read is bounded by the socket timeout, so a server that never
    answers fails the test instead of hanging it.
    """

    def __init__(self, port: int, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def __enter__(self) -> Peer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self, deadline: float) -> None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"no full response in time; got {self.buf!r}")
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError(f"connection closed; unread bytes {self.buf!r}")
        self.buf += chunk

    def response(self) -> tuple[int, dict[str, str], bytes]:
        """One full response: status, headers (names lower-cased), body."""
        deadline = time.monotonic() + 2 * (self.sock.gettimeout() or 5.0)
        for _ in range(10_000):
            if b"\r\n\r\n" in self.buf:
                break
            self._fill(deadline)
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        version, status, *_ = status_line.split(" ", 2)
        assert version.startswith("HTTP/1."), status_line
        headers: dict[str, str] = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        for _ in range(10_000):
            if len(self.buf) >= length:
                break
            self._fill(deadline)
        body, self.buf = self.buf[:length], self.buf[length:]
        return int(status), headers, body

    def closed_within(self, seconds: float) -> bool:
        """True when the server closes (or resets) the connection in time."""
        self.sock.settimeout(seconds)
        deadline = time.monotonic() + seconds
        try:
            while time.monotonic() < deadline:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except TimeoutError:
            return False
        except ConnectionError:
            return True
        return False


def request(
    method: str, target: str, headers: list[tuple[str, str]] | None = None, version: str = "1.1"
) -> bytes:
    hdrs = [("Host", "edges.test")] if headers is None else headers
    lines = [f"{method} {target} HTTP/{version}", *(f"{k}: {v}" for k, v in hdrs)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def error_of(body: bytes) -> str:
    return str(json.loads(body)["error"])


@pytest.fixture(scope="module")
def edges(module_tmp: Path) -> Iterator[Runtime]:
    """A sync runtime with small limits whose handler records every call."""
    rt = start_runtime(
        module_tmp,
        "edges.py",
        timeout_seconds=5,
        concurrency=2,
        queue_depth=8,
        max_body_bytes=4096,
        max_header_bytes=MAX_HEADER_BYTES,
    )
    yield rt
    rt.stop()


def handled(rt: Runtime) -> list[str]:
    """``METHOD path`` of every call that reached the edges handler."""
    path = rt.log_path.parent / "calls.log"
    return path.read_text().splitlines() if path.exists() else []


def process_gone(pid: int) -> bool:
    """The process no longer runs: no /proc entry, or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def wait_gone(pid: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process_gone(pid):
            return True
        time.sleep(0.05)
    return process_gone(pid)


# --- 7. trailers -----------------------------------------------------------


def test_chunked_trailers_never_override_headers(app_runtime: Runtime) -> None:
    head = request(
        "POST",
        "/echo",
        [
            ("Host", "edges.test"),
            ("X-User", "alice"),
            ("Authorization", "Bearer alice-token"),
            ("Content-Type", "text/plain"),
            ("Transfer-Encoding", "chunked"),
            ("Trailer", "X-User, Authorization, Content-Type"),
        ],
    )
    body = (
        b"5\r\nhello\r\n0\r\n"
        b"X-User: admin\r\n"
        b"Authorization: Bearer admin-token\r\n"
        b"Content-Type: application/json\r\n\r\n"
    )
    with Peer(app_runtime.port) as peer:
        peer.send(head + body)
        status, _, payload = peer.response()
    assert status == 200, payload
    got = json.loads(payload)
    assert got["headers"]["x-user"] == "alice"
    assert got["headers"]["authorization"] == "Bearer alice-token"
    assert got["headers"]["content-type"] == "text/plain"
    assert got["event"] == "hello"


# --- 8. a malformed request in a pipeline ------------------------------------


def test_pipeline_answers_every_request_before_a_malformed_one(edges: Runtime) -> None:
    good = b"".join(request("GET", f"/r{i}") for i in range(1, 6))
    with Peer(edges.port) as peer:
        peer.send(good + b"GE T / HTTP/1.1\r\nHost: edges.test\r\n\r\n")
        for i in range(1, 6):
            status, _, body = peer.response()
            assert (status, json.loads(body)) == (200, {"method": "GET", "path": f"/r{i}"})
        status, headers, body = peer.response()
        assert status == 400
        assert error_of(body) == "Runtime.BadRequest"
        assert headers.get("connection") == "close"
        assert peer.closed_within(2.0)


# --- 9. a large head sent slowly ------------------------------------------


def test_large_head_sent_slowly_is_431_not_a_reset(edges: Runtime) -> None:
    log_start = edges.log_path.stat().st_size
    with Peer(edges.port) as peer:
        peer.send(b"GET /slow-head HTTP/1.1\r\nHost: edges.test\r\nX-Big: ")
        # One header value in 100-byte pieces: the head grows to 4x the
        # limit before the header is complete.
        for _ in range(4 * MAX_HEADER_BYTES // 100):
            try:
                peer.send(b"a" * 100)
            except OSError:
                break  # the server stopped reading; its answer must still be there
            time.sleep(0.005)
        with contextlib.suppress(OSError):
            peer.send(b"\r\n\r\n")
        try:
            status, _, body = peer.response()
        except (ConnectionError, EOFError) as exc:
            pytest.fail(f"connection dropped instead of a 431: {exc!r}")
    assert status == 431
    assert error_of(body) == "Runtime.HeadersTooLarge"
    time.sleep(0.2)  # let anything the server logs about it arrive
    with edges.log_path.open("rb") as f:
        f.seek(log_start)
        assert b"Traceback" not in f.read()
    assert "GET /slow-head" not in handled(edges)


# --- 12. Host rules ----------------------------------------------------------


def test_http11_without_host_is_400_but_http10_is_fine(edges: Runtime) -> None:
    with Peer(edges.port) as peer:
        peer.send(request("GET", "/no-host", headers=[]))
        status, _, body = peer.response()
    assert status == 400, body
    assert error_of(body) == "Runtime.BadRequest"
    assert "GET /no-host" not in handled(edges)
    with Peer(edges.port) as peer:
        peer.send(request("GET", "/old-client", headers=[], version="1.0"))
        status, _, body = peer.response()
    assert (status, json.loads(body)) == (200, {"method": "GET", "path": "/old-client"})


def test_two_host_headers_are_400(edges: Runtime) -> None:
    with Peer(edges.port) as peer:
        peer.send(request("GET", "/two-hosts", headers=[("Host", "a.test"), ("Host", "b.test")]))
        status, _, body = peer.response()
    assert status == 400, body
    assert error_of(body) == "Runtime.BadRequest"
    assert "GET /two-hosts" not in handled(edges)


# --- 12. odd request lines and targets --------------------------------------


def test_http09_request_line_is_refused_promptly(edges: Runtime) -> None:
    with Peer(edges.port, timeout=2.0) as peer:
        peer.send(b"GET /\r\n")
        closed = peer.closed_within(2.0)
        answer = peer.buf
    assert closed or answer.startswith(b"HTTP/1.1 400 "), f"left hanging; got {answer!r}"
    if answer:
        assert answer.startswith(b"HTTP/1.1 400 "), answer


def test_connect_is_405_and_never_reaches_the_handler(edges: Runtime) -> None:
    with Peer(edges.port) as peer:
        peer.send(request("CONNECT", "example.com:443", [("Host", "example.com:443")]))
        status, _, body = peer.response()
    assert status == 405, body
    assert error_of(body) == "Runtime.MethodNotAllowed"
    assert not [c for c in handled(edges) if c.startswith("CONNECT")]


def test_upgrade_request_is_answered_normally_then_closed(edges: Runtime) -> None:
    headers = [("Host", "edges.test"), ("Connection", "Upgrade"), ("Upgrade", "websocket")]
    with Peer(edges.port) as peer:
        peer.send(request("GET", "/upgrade-me", headers))
        status, _, body = peer.response()
        assert (status, json.loads(body)) == (200, {"method": "GET", "path": "/upgrade-me"})
        assert peer.closed_within(2.0), "connection left open after an ignored upgrade"


def test_asterisk_target_is_400_except_for_options(edges: Runtime) -> None:
    with Peer(edges.port) as peer:
        peer.send(request("GET", "*"))
        status, _, body = peer.response()
    assert status == 400, body
    assert error_of(body) == "Runtime.BadRequest"
    with Peer(edges.port) as peer:
        peer.send(request("OPTIONS", "*"))
        status, _, body = peer.response()
    assert 200 <= status < 300, body
    assert not [c for c in handled(edges) if c.endswith(" *")], handled(edges)


# --- 12. half-closed client -------------------------------------------------


def test_half_closed_client_still_gets_its_reply(edges: Runtime) -> None:
    with Peer(edges.port) as peer:
        peer.send(request("GET", "/sleep?s=0.3"))
        peer.sock.shutdown(socket.SHUT_WR)
        try:
            status, _, body = peer.response()
        except (ConnectionError, EOFError) as exc:
            pytest.fail(f"no reply after the client half-closed: {exc!r}")
    assert (status, json.loads(body)) == (200, {"slept": "0.3"})


# --- 12. NaN and Infinity ---------------------------------------------------


@pytest.mark.parametrize("path", ["/nan", "/inf"])
def test_non_finite_float_is_an_invalid_response(edges: Runtime, path: str) -> None:
    r = httpx.get(edges.url + path, timeout=10)
    assert r.status_code == 500, r.text
    assert r.json()["error"] == "Runtime.InvalidResponse"


# --- 11. processes forked by a handler --------------------------------------


def _kill_leftover(pid_file: Path) -> None:
    # Only the child our own handler forked, so a failure never leaks it.
    with contextlib.suppress(ValueError, OSError):
        os.kill(int(pid_file.read_text()), signal.SIGKILL)


def test_timeout_kills_what_the_handler_forked(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    rt = start_runtime(tmp_path, "edges.py", timeout_seconds=1, concurrency=1)
    try:
        r = httpx.get(rt.url + "/fork-hang", params={"pidfile": str(pid_file)}, timeout=10)
        assert r.status_code == 504
        assert r.json()["error"] == "Runtime.Timeout"
        child = int(pid_file.read_text())
        assert wait_gone(child, 3.0), f"child {child} forked by the handler outlived the timeout"
        assert httpx.get(rt.url + "/pid", timeout=10).status_code == 200
    finally:
        _kill_leftover(pid_file)
        rt.stop()


def test_worker_crash_is_seen_at_once_though_its_child_holds_the_pipes(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    rt = start_runtime(tmp_path, "edges.py", timeout_seconds=10, concurrency=1)
    try:
        started = time.monotonic()
        try:
            r = httpx.get(rt.url + "/fork-crash", params={"pidfile": str(pid_file)}, timeout=5)
        except httpx.TimeoutException:
            pytest.fail("no answer within 5 s: the crash waited for the call's timeout")
        elapsed = time.monotonic() - started
        assert r.status_code == 500, r.text
        assert r.json()["error"] == "Runtime.WorkerCrashed"
        assert elapsed < 3.0
        child = int(pid_file.read_text())
        assert wait_gone(child, 3.0), f"child {child} of the crashed worker still runs"
        assert httpx.get(rt.url + "/pid", timeout=10).status_code == 200
    finally:
        _kill_leftover(pid_file)
        rt.stop()


# --- 12. worker recycling ---------------------------------------------------


def test_worker_max_calls_recycles_workers(tmp_path: Path) -> None:
    rt = start_runtime(tmp_path, "app.py", worker_max_calls=3, concurrency=1, timeout_seconds=10)
    try:
        pids = []
        with rt.client(timeout=10) as c:
            for _ in range(10):
                r = c.get("/pid")
                assert r.status_code == 200, r.text
                pids.append(r.json()["pid"])
        assert len(set(pids)) >= 3, pids
        # No worker served more calls than allowed.
        assert max(pids.count(p) for p in set(pids)) <= 3, pids
    finally:
        rt.stop()


# --- 12. memory of aborted connections ---------------------------------------


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def _abort_mid_body(port: int, connections: int) -> None:
    """Open ``connections`` at once, send each a head and 64 KiB of a 1 MiB
    body, then reset them all."""
    head = request("POST", "/echo", [("Host", "edges.test"), ("Content-Length", str(1 << 20))])
    socks: list[socket.socket] = []
    try:
        for _ in range(connections):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            socks.append(s)
            s.sendall(head + b"z" * 65536)
        time.sleep(0.05)  # let the server read what was sent
    finally:
        for s in socks:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()


def test_aborted_connections_free_their_memory_without_a_full_gc(tmp_path: Path) -> None:
    rt = start_runtime(tmp_path, "edges.py")  # default limits: 6 MiB bodies
    try:
        _abort_mid_body(rt.port, 50)  # warm the allocator up
        before = _rss_kib(rt.proc.pid)
        for _ in range(39):  # 1,950 more connections, 64 KiB each: ~122 MiB received
            _abort_mid_body(rt.port, 50)
        grown = _rss_kib(rt.proc.pid) - before
        # Freed as each connection goes, the same few MiB are reused; kept
        # until a full collection, the server grows by tens of MiB.
        assert grown < 16 * 1024, f"server RSS grew {grown} KiB over 1,950 aborted connections"
        assert httpx.get(rt.url + "/_/health", timeout=5).status_code == 200
    finally:
        rt.stop()


# --- 10. a log reader that does not read ------------------------------------


def _spawn_with_piped_output(tmp: Path, source: str) -> tuple[subprocess.Popen[bytes], int, int]:
    """Start a runtime whose stdout and stderr go to a pipe nobody reads yet."""
    port = free_port()
    read_fd, write_fd = os.pipe()
    env = {
        **os.environ,
        "EMBER_HOST": "127.0.0.1",
        "EMBER_PORT": str(port),
        "EMBER_TARGET": f"{Path(source).stem}:handle",
        "EMBER_SOURCE": str(FUNCTIONS / source),
        "EMBER_TIMEOUT_SECONDS": "10",
    }
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ember_runtime"],
            env=env,
            stdout=write_fd,
            stderr=write_fd,
            cwd=tmp,
        )
    finally:
        os.close(write_fd)
    return proc, port, read_fd


def _drain(fd: int, sink: list[int]) -> None:
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            return
        if not chunk:
            return
        sink[0] += len(chunk)


def test_a_stalled_log_reader_never_freezes_the_server(tmp_path: Path) -> None:
    proc, port, read_fd = _spawn_with_piped_output(tmp_path, "alogs.py")
    url = f"http://127.0.0.1:{port}"
    drained = [0]
    drainer = threading.Thread(target=_drain, args=(read_fd, drained), daemon=True)
    try:
        deadline = time.monotonic() + BOOT_TIMEOUT
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"runtime exited {proc.returncode}"
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/_/ready", timeout=2).status_code == 200:
                    break
            time.sleep(0.05)
        else:
            pytest.fail("runtime not ready")
        # 200 lines of 4 KiB: far more than the 64 KiB a pipe holds.
        with Peer(port, timeout=5) as spam:
            spam.send(request("GET", "/spam?n=200&size=4096"))
            time.sleep(0.3)
            for path in ("/_/health", "/other", "/_/health"):
                started = time.monotonic()
                try:
                    r = httpx.get(url + path, timeout=2.0)
                except httpx.TimeoutException:
                    pytest.fail(f"{path} got no answer in 2 s while the log pipe was full")
                assert r.status_code == 200, r.text
                assert time.monotonic() - started < 2.0
            spam.sock.settimeout(2.0)
            status, _, body = spam.response()
            assert (status, json.loads(body)) == (200, {"logged": 200})
    finally:
        drainer.start()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        drainer.join(10)
        os.close(read_fd)
