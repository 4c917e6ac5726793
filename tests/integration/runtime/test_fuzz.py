"""Bounded fuzzing of the runtime's HTTP/1.1 front door.

Hypothesis generates malformed requests (bad request lines and methods,
bad, negative, duplicate and conflicting Content-Length and
Transfer-Encoding, bad chunk sizes, obs-fold, bare LF, NULs, huge header
names, truncated bodies, random bytes, pipelines of good and bad requests)
and sends each over a fresh loopback connection to one sync runtime with
small limits and short timeouts, in pieces, then reads, half-closes or
resets. Whatever comes back must be well-formed HTTP/1.1 answers, and every
connection must be answered or closed within ``EXAMPLE_SECONDS`` (the header,
body and idle timeouts are 1-2 s); after the run the runtime must still
serve, hold nothing in flight, and have leaked no worker processes or file
descriptors. Every example is bounded (3 s at most) and the run is
derandomized with a fixed budget and no shrinking, so CI sees the same
inputs every time.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import socket
import struct
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httptools
import httpx
import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from tests.integration.runtime.runtime_harness import (
    Footprint,
    Runtime,
    start_runtime,
)

pytestmark = pytest.mark.integration

MAX_EXAMPLES = 150
# The longest one example waits for answers: past the header, body and idle
# timeouts below, so a connection still open then is one the runtime forgot.
EXAMPLE_SECONDS = 3.0
QUIET_SECONDS = 0.3  # after a whole answer, this much silence ends the read
SETTLE_SECONDS = 10.0  # for the pool, sockets and counters to settle afterwards

RUNTIME_SETTINGS: dict[str, Any] = {
    "concurrency": 2,
    "queue_depth": 4,
    "timeout_seconds": 2,
    "max_body_bytes": 1024,
    "max_header_bytes": 1024,
    "header_timeout_seconds": 1,
    "body_timeout_seconds": 1,
    "idle_timeout_seconds": 2,
    "function": "test/fuzz",
}

GOOD = b"GET /json HTTP/1.1\r\nhost: fuzz\r\n\r\n"

# --- process and socket accounting ----------------------------------------


def tracebacks(rt: Runtime) -> list[str]:
    """Log lines with a Python traceback, other than the handler's own
    (``/raise`` logs its ValueError as a JSON record on purpose)."""
    found = []
    for line in rt.log_path.read_text(errors="replace").splitlines():
        if "Traceback" not in line:
            continue
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if isinstance(record, dict) and record.get("error") == "Runtime.HandlerError":
            continue
        found.append(line)
    return found


# --- reading answers ------------------------------------------------------


class Answers:
    """Parses what the runtime sent back; notes anything that is not a
    sequence of well-formed HTTP/1.1 responses."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.raw = b""
        self.begun = 0
        self.complete = 0
        self.statuses: list[int] = []
        self.problems: list[str] = []

    def on_message_begin(self) -> None:
        self.begun += 1

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        self.statuses.append(status)
        if self.parser.get_http_version() != "1.1":
            self.problems.append(f"answer in HTTP/{self.parser.get_http_version()}")
        if not (status == 100 or 200 <= status < 300 or 400 <= status < 600):
            self.problems.append(f"status {status}")

    def on_message_complete(self) -> None:
        self.complete += 1

    def feed(self, data: bytes) -> None:
        if not self.raw and not data.startswith(b"HTTP/1.1 "[: len(data)]):
            self.problems.append("does not start with HTTP/1.1")
        self.raw += data
        if self.problems:
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.problems.append(f"unparseable answer: {exc}")

    @property
    def whole(self) -> bool:
        return self.begun == self.complete


def exchange(
    port: int, segments: list[bytes], pause: float, mode: str, stalls: bool = False
) -> tuple[Answers, str]:
    """One connection: send ``segments``, then read, half-close and read, or
    reset. Returns the answers and how the connection ended.

    Reading stops at the runtime's close, at the deadline, or (unless the
    last request ``stalls`` half sent, when the runtime must close) once a
    whole answer is followed by a short silence."""
    answers = Answers()
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=1.0) as s:
        for i, segment in enumerate(segments):
            if i and pause:
                time.sleep(pause)
            try:
                s.sendall(segment)
            except OSError:
                break  # the runtime already answered and closed (a 400, say)
        if mode == "reset":
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return answers, "reset"
        if mode == "half_close":
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_WR)
        deadline = started + EXAMPLE_SECONDS
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return answers, "deadline"
            waiting_for_more = answers.complete and answers.whole and not stalls
            s.settimeout(min(left, QUIET_SECONDS) if waiting_for_more else left)
            try:
                data = s.recv(65536)
            except TimeoutError:
                if waiting_for_more:
                    return answers, "quiet"
                continue
            except ConnectionResetError:
                return answers, "reset by runtime"
            if not data:
                if not answers.whole:
                    answers.problems.append("connection closed inside an answer")
                return answers, "closed"
            answers.feed(data)


# --- what to send ---------------------------------------------------------

EOLS = st.sampled_from([b"\r\n", b"\r\n", b"\r\n", b"\n", b"\r", b"\r\r\n"])
METHODS = st.sampled_from(
    [
        b"GET",
        b"POST",
        b"PUT",
        b"PATCH",
        b"DELETE",
        b"OPTIONS",
        b"BREW",
        b"get",
        b"",
        b"G\x00T",
        b"CONNECT",
        b"TRACE",
        b"PRI",
        b"M-SEARCH",
        b"POST\x7f",
        b"G\xc3\xa9T",
    ]
) | st.binary(min_size=1, max_size=8)
TARGETS = st.sampled_from(
    [
        b"/json",
        b"/echo",
        b"/raise",
        b"/none",
        b"/text",
        b"/bytes",
        b"/_/stats",
        b"/_/ready",
        b"/_/health",
        b"/_/nope",
        b"/metrics",
        b"*",
        b"http://fuzz/json",
        b"/json?a=1&a=2",
        b"/%00",
        b"/%zz",
        b"/\xff\xfe",
        b"",
        b"//json",
        b"/json#frag",
        b"/" + b"p" * 1100,
    ]
) | st.binary(max_size=40)
VERSIONS = st.sampled_from(
    [
        b"HTTP/1.1",
        b"HTTP/1.1",
        b"HTTP/1.0",
        b"HTTP/1.2",
        b"HTTP/2.0",
        b"HTTP/0.9",
        b"HTTP/1.1 extra",
        b"HTTX/1.1",
        b"http/1.1",
        b"HTTP/1",
        b"",
        b"HTTP/1.1\x00",
    ]
)
SPACES = st.sampled_from([b" ", b" ", b" ", b"  ", b"\t", b""])
CONTENT_LENGTHS = st.sampled_from(
    [
        b"0",
        b"5",
        b"-1",
        b"-0",
        b"+5",
        b" 5",
        b"5 ",
        b"0x10",
        b"1e3",
        b"5, 5",
        b"5, 6",
        b"",
        b"abc",
        b"99999999999999999999999",
        b"18446744073709551616",
        b"1025",
        b"4096",
    ]
) | st.integers(0, 2000).map(lambda n: str(n).encode())
HEADER_LINES = st.one_of(
    st.sampled_from(
        [
            b"host: fuzz",
            b"connection: close",
            b"connection: keep-alive",
            b"connection: upgrade",
            b"upgrade: websocket",
            b"expect: 100-continue",
            b"expect: nonsense",
            b"content-type: application/json",
            b"content-type: text/plain; charset=bogus",
            b"x-request-id: \x01\x02",
            b"x-request-id: " + b"r" * 200,
            b"transfer-encoding: chunked",
            b"transfer-encoding: gzip, chunked",
            b"transfer-encoding: chunked, gzip",
            b"transfer-encoding: identity",
            b"transfer-encoding:  chunked",
            b"Transfer-Encoding: CHUNKED",
            b"transfer-encoding: xchunked",
            b"transfer-encoding : chunked",
            b"content-length : 5",
            b" host: folded-leading",
            b"\tobs-fold continuation",
            b"no-colon-here",
            b": empty-name",
            b"x-nul: a\x00b",
            b"x\x00nul: v",
            b"x-8bit: \xff\xfe",
            b"x-ctl: \x7f",
            b"traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            b"traceparent: garbage",
        ]
    ),
    CONTENT_LENGTHS.map(lambda v: b"content-length: " + v),
    st.integers(200, 3000).map(lambda n: b"x" * n + b": huge-name"),
    st.integers(200, 3000).map(lambda n: b"x-huge-value: " + b"v" * n),
    st.binary(max_size=30),
)
CHUNK_SIZES = st.sampled_from(
    [None, None, None, b"zz", b"-1", b"ffffffffffffffffffff", b"", b"5;ext=1", b"5 ", b"0x5"]
)
CHUNK_ENDS = st.sampled_from(
    [
        b"0\r\n\r\n",
        b"0\r\n\r\n",
        b"0\r\n",
        b"0\r\nx-trailer: t\r\n\r\n",
        b"",
        b"0\n\n",
        b"00\r\n\r\n",
    ]
)


@st.composite
def chunked_bodies(draw: st.DrawFn) -> bytes:
    out = b""
    for data in draw(st.lists(st.binary(min_size=1, max_size=40), max_size=3)):
        size = draw(CHUNK_SIZES)
        out += (b"%x" % len(data) if size is None else size) + draw(EOLS) + data + draw(EOLS)
    return out + draw(CHUNK_ENDS)


BODIES = st.one_of(
    st.just(b""),
    st.binary(max_size=64),
    chunked_bodies(),
    st.sampled_from([b'{"a": 1}', b"{nope", b"x" * 1100, b"y" * 5000]),
)


@st.composite
def malformed_requests(draw: st.DrawFn) -> bytes:
    eol = draw(EOLS)
    line = draw(METHODS) + draw(SPACES) + draw(TARGETS) + draw(SPACES) + draw(VERSIONS)
    headers = b"".join(h + draw(EOLS) for h in draw(st.lists(HEADER_LINES, max_size=6)))
    message = line + eol + headers + draw(EOLS) + draw(BODIES)
    if len(message) > 1 and draw(st.integers(0, 4)) == 0:  # truncated somewhere
        message = message[: draw(st.integers(1, len(message) - 1))]
    return message


@st.composite
def good_requests(draw: st.DrawFn) -> bytes:
    body = draw(st.binary(max_size=64))
    return draw(
        st.sampled_from(
            [
                GOOD,
                b"POST /echo HTTP/1.1\r\nhost: fuzz\r\ncontent-length: %d\r\n\r\n%s"
                % (len(body), body),
                b"POST /echo HTTP/1.1\r\nhost: fuzz\r\ntransfer-encoding: chunked\r\n\r\n"
                + (b"%x\r\n%s\r\n" % (len(body), body) if body else b"")
                + b"0\r\n\r\n",
                b"GET /raise HTTP/1.1\r\nhost: fuzz\r\n\r\n",
                b"GET /_/stats HTTP/1.1\r\nhost: fuzz\r\n\r\n",
            ]
        )
    )


MESSAGES = st.one_of(
    malformed_requests(),
    malformed_requests(),
    good_requests(),
    st.binary(min_size=1, max_size=200),
)


@st.composite
def connections(draw: st.DrawFn) -> tuple[list[bytes], float, str, bool]:
    """(segments to send, pause between them, then read / half_close / reset,
    whether the last request stalls half sent)."""
    payload = b"".join(draw(st.lists(MESSAGES, min_size=1, max_size=4)))
    stalls = draw(st.integers(0, 3)) == 0
    if stalls:  # then a good request cut short, and nothing more
        good = draw(good_requests())
        frac = draw(st.sampled_from([0.1, 0.5, 0.9]) | st.floats(0.0, 1.0))
        payload += good[: min(max(1, int(len(good) * frac)), len(good) - 1)]
    cuts = sorted(draw(st.lists(st.integers(0, len(payload)), max_size=3)))
    bounds = [0, *cuts, len(payload)]
    segments = [payload[a:b] for a, b in itertools.pairwise(bounds) if b > a]
    pause = draw(st.sampled_from([0.0, 0.0, 0.02]))
    mode = draw(st.sampled_from(["read", "read", "half_close", "reset"]))
    return segments, pause, mode, stalls


def case(
    *segments: bytes, pause: float = 0.0, mode: str = "read", stalls: bool = False
) -> tuple[list[bytes], float, str, bool]:
    return list(segments), pause, mode, stalls


# Each listed case runs first, whatever the generator draws.
EXPLICIT = [
    case(
        b"POST /echo HTTP/1.1\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n"
    ),
    case(b"POST /echo HTTP/1.1\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello!"),
    case(b"POST /echo HTTP/1.1\r\ncontent-length: -1\r\n\r\n"),
    case(b"POST /echo HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"),
    case(b"POST /echo HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\nffffffffffffffffff\r\n"),
    case(b"GET /json HTTP/1.1\r\nx-a: 1\r\n folded\r\n\r\n"),
    case(b"GET /json HTTP/1.1\nhost: fuzz\n\n"),
    case(b"GET /json HTTP/1.1\r\nx-nul: a\x00b\r\n\r\n"),
    case(b"GET /json HTTP/1.1\r\n" + b"x" * 3000 + b": v\r\n\r\n"),
    case(GOOD + b"BAD REQUEST LINE\r\n\r\n" + GOOD),
    case(GOOD * 3 + b"GET /json HTTP/1.1\r\ncontent-length: x\r\n\r\n"),
    case(GOOD[:20], GOOD[20:], pause=0.02),
    case(GOOD * 2, mode="half_close"),
    case(GOOD * 2, mode="reset"),
    # stalls: the head never ends, the body never comes, nothing is sent
    case(b"GET /json HTTP/1.1\r\nhost: fuzz\r\n", stalls=True),
    case(b"POST /echo HTTP/1.1\r\ncontent-length: 100\r\n\r\nshort", stalls=True),
    case(GOOD + b"GET /json HTT", stalls=True),
    case(stalls=True),
]


# Worst case: every example runs to its deadline.
@pytest.mark.timeout(60 + (MAX_EXAMPLES + 20) * (EXAMPLE_SECONDS + 1))
def test_malformed_requests_never_break_the_runtime(tmp_path: Path) -> None:
    rt = start_runtime(tmp_path, "app.py", **RUNTIME_SETTINGS)
    seen: Counter[str] = Counter()
    hung: list[bytes] = []
    try:
        pool = RUNTIME_SETTINGS["concurrency"] + 1
        rt.wait_until(lambda s: s["workers"] >= pool)
        assert httpx.get(rt.url + "/json", timeout=10).status_code == 200
        footprint = Footprint(rt)

        def check(segments: list[bytes], pause: float, mode: str, stalls: bool) -> None:
            assert rt.proc.poll() is None, "the runtime exited"
            answers, ended = exchange(rt.port, segments, pause, mode, stalls)
            sent = b"".join(segments)
            seen[ended] += 1
            seen.update(f"{s // 100}xx" for s in answers.statuses)
            if ended == "deadline":
                hung.append(sent)
            if b"HEAD" in sent:
                # The parser cannot know which answer has no body; the
                # status line is all that is checked.
                answers.problems = [p for p in answers.problems if "HTTP/1.1" in p]
            assert not answers.problems, (answers.problems, sent, answers.raw[:500])

        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            phases=[Phase.explicit, Phase.generate],  # no shrinking: bounded
            suppress_health_check=list(HealthCheck),
            print_blob=False,
        )
        @given(conn=connections())
        def fuzz(conn: tuple[list[bytes], float, str, bool]) -> None:
            check(*conn)

        for conn in EXPLICIT:
            fuzz = example(conn=conn)(fuzz)
        fuzz()

        # Afterwards: it still serves, holds nothing, and leaked nothing.
        with rt.client(timeout=10) as c:
            for i in range(20):
                assert c.get("/json").json() == {"ok": True, "n": [1, 2]}
                r = c.post("/echo", content=b"%d" % i, headers={"content-type": "text/plain"})
                assert (r.status_code, r.json()["event"]) == (200, str(i))
        rt.wait_until(lambda s: s["inflight"] == 0 and s["queued"] == 0, timeout=5)
        assert httpx.get(rt.url + "/_/ready", timeout=10).status_code == 200
        assert rt.proc.poll() is None
        stats = rt.wait_until(lambda s: s["workers"] == pool, timeout=SETTLE_SECONDS)
        assert stats["worker_restarts"] == 0  # no request crashed a worker
        footprint.assert_nothing_leaked()
        assert not tracebacks(rt), "\n".join(tracebacks(rt))
        # Every connection was answered and went quiet, or was closed, in
        # time: the header, body and idle timeouts leave none hanging.
        assert not hung, f"{len(hung)} connections neither answered nor closed: {hung[:20]}"
    finally:
        print(f"fuzz outcomes: {dict(seen)}")
        rt.stop()
