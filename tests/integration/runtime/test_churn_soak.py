"""A bounded churn soak: about a minute of mixed calls on a sync runtime in
which about a fifth of the calls kill their worker (``/exit``, ``/segv``) or
overrun the timeout (``/sleep?s=3``, 504 and the worker is killed), while
the rest are ordinary calls that must all succeed.

Eight client threads share at most ``CONCURRENCY`` calls in flight (a
semaphore), so no call waits behind a sleeping one in the runtime's queue,
where it could run out its own 1 s: a good call can only fail if the pool
itself does (a worker that never comes back, a wedged slot, a reply given
to the wrong call). The good calls carry a unique request id and body and check they get
their own back. Half the threads open a new connection per call.

Meanwhile a probe process sends bursts of pipelined ``/_/health`` requests,
as load balancers and scrapers do. They take no slot, but they keep the
server's event loop busy, which is what opens the window for races between
a replacement worker arriving and calls being handed to it (a pool that
only ever sees an idle loop hides them). Every probe must get a 200.

``EMBER_SOAK_SECONDS`` sets the duration (60 by default).
"""

from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.integration.runtime.runtime_harness import (
    Footprint,
    Runtime,
    start_runtime,
)

pytestmark = pytest.mark.integration

SOAK_SECONDS = float(os.environ.get("EMBER_SOAK_SECONDS", "60"))
CONCURRENCY = 4
THREADS = 8
CALL_TIMEOUT = 10.0  # client side; the runtime answers every call within ~1 s
SETTLE_SECONDS = 10.0

# Probe bursts: this many pipelined /_/health requests, then this long a pause.
PROBE_DEPTH = 8
PROBE_PAUSE = 0.01
PROBE = r"""
import socket, sys, time
import httptools

port, depth = int(sys.argv[1]), int(sys.argv[3])
seconds, pause = float(sys.argv[2]), float(sys.argv[4])
burst = b"GET /_/health HTTP/1.1\r\nhost: probe\r\n\r\n" * depth
answers, bad, reconnects = 0, [], 0

class Answers:
    def on_message_complete(self):
        global answers
        answers += 1
        if parser.get_status_code() != 200:
            bad.append(parser.get_status_code())

end = time.monotonic() + seconds
while time.monotonic() < end and not bad:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        parser = httptools.HttpResponseParser(Answers())
        while time.monotonic() < end and not bad:
            want = answers + depth
            s.sendall(burst)
            while answers < want and (data := s.recv(65536)):
                parser.feed_data(data)
            if answers < want:
                reconnects += 1  # the runtime closed it; allowed, start over
                break
            time.sleep(pause)
print(f"{answers} probes, {reconnects} reconnects, bad statuses {bad[:10]}")
sys.exit(1 if bad else 0)
"""

# kind: weight. 20 % of calls kill or time out their worker.
MIX = {"json": 40, "echo": 40, "exit": 8, "segv": 8, "sleep": 4}
CRASHES = {"exit", "segv"}
GOOD = {"json", "echo"}


class Tally:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: Counter[str] = Counter()
        self.failures: list[str] = []
        self.good_latency: list[float] = []

    def record(self, kind: str, problem: str | None, seconds: float) -> None:
        with self.lock:
            self.calls[kind] += 1
            if problem is not None:
                self.calls["failed"] += 1
                if len(self.failures) < 20:
                    self.failures.append(f"{kind}: {problem}")
            if kind in GOOD:
                self.good_latency.append(seconds)


def call(c: httpx.Client, kind: str, tag: str, close: bool) -> str | None:
    """Make one call of ``kind``; None if it went as it must, else why not."""
    headers = {"x-request-id": tag}
    if close:
        headers["connection"] = "close"
    if kind == "echo":
        payload = {"tag": tag, "pad": "x" * (len(tag) * 7 % 300)}
        headers["content-type"] = "application/json"
        r = c.post("/echo", content=json.dumps(payload), headers=headers)
        if r.status_code != 200:
            return f"{r.status_code} {r.text[:200]}"
        got = r.json()
        if (got["event"], got["request_id"]) != (payload, tag):
            return f"someone else's answer: {r.text[:200]}"
        return None
    path = "/sleep?s=3" if kind == "sleep" else f"/{kind}"
    r = c.get(path, headers=headers)
    want = {"json": 200, "exit": 500, "segv": 500, "sleep": 504}[kind]
    if r.status_code != want:
        return f"{r.status_code} {r.text[:200]}"
    if kind == "json":
        return None if r.json() == {"ok": True, "n": [1, 2]} else r.text[:200]
    error = "Runtime.Timeout" if kind == "sleep" else "Runtime.WorkerCrashed"
    if r.json().get("error") != error or r.headers.get("x-request-id") != tag:
        return r.text[:200]
    return None


def client(rt: Runtime, index: int, gate: threading.Semaphore, end: float, tally: Tally) -> None:
    rng = random.Random(index)
    kinds, weights = list(MIX), list(MIX.values())
    close = index % 2 == 1  # half the threads churn connections too
    n = 0
    with httpx.Client(base_url=rt.url, timeout=CALL_TIMEOUT) as c:
        while time.monotonic() < end:
            kind = rng.choices(kinds, weights)[0]
            n += 1
            with gate:
                started = time.perf_counter()
                try:
                    problem = call(c, kind, f"soak-{index}-{n}", close)
                except (httpx.HTTPError, ValueError, KeyError) as exc:
                    problem = f"{type(exc).__name__}: {exc}"
                seconds = time.perf_counter() - started
            tally.record(kind, problem, seconds)


def unexpected_log_lines(rt: Runtime) -> list[str]:
    """Tracebacks, and errors other than the crashes and timeouts caused on purpose."""
    found = []
    for line in rt.log_path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if not isinstance(record, dict):
            if line.strip():
                found.append(line)  # not a log record: interpreter output
            continue
        if "Traceback" in line or (
            record.get("level") == "error"
            and record.get("error") not in ("Runtime.WorkerCrashed", "Runtime.Timeout")
        ):
            found.append(line)
    return found


@pytest.mark.timeout(SOAK_SECONDS + 240)
def test_worker_churn_soak(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rt = start_runtime(
        tmp_path,
        "app.py",
        concurrency=CONCURRENCY,
        timeout_seconds=1,
        queue_depth=64,
        function="test/soak",
    )
    tally = Tally()
    summary = ""
    probe: subprocess.Popen[bytes] | None = None
    try:
        pool = rt.wait_until(lambda s: s["workers"] >= CONCURRENCY + 1)["workers"]
        with rt.client(timeout=10) as c:
            for _ in range(10):
                assert c.get("/json").status_code == 200
        footprint = Footprint(rt)

        gate = threading.BoundedSemaphore(CONCURRENCY)
        started = time.monotonic()
        end = started + SOAK_SECONDS
        threads = [
            threading.Thread(target=client, args=(rt, i, gate, end, tally), daemon=True)
            for i in range(THREADS)
        ]
        probe = subprocess.Popen(
            [
                sys.executable,
                "-c",
                PROBE,
                *map(str, (rt.port, SOAK_SECONDS, PROBE_DEPTH, PROBE_PAUSE)),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for t in threads:
            t.start()
        for t in threads:
            t.join(max(1.0, end + 2 * CALL_TIMEOUT - time.monotonic()))
        elapsed = time.monotonic() - started
        assert not any(t.is_alive() for t in threads), "a client thread is stuck"
        probe_out, _ = probe.communicate(timeout=max(1.0, end + 30 - time.monotonic()))
        probes = probe_out.decode(errors="replace").strip()

        calls = tally.calls
        total = sum(calls[k] for k in MIX)
        bad = sum(calls[k] for k in CRASHES | {"sleep"})
        lat = sorted(tally.good_latency) or [0.0]
        stats = rt.stats()
        summary = (
            f"churn soak: {elapsed:.0f}s, {total} calls ({total / elapsed:.0f}/s), "
            f"{calls['json'] + calls['echo']} good (p50 {statistics.median(lat) * 1000:.1f} ms, "
            f"max {lat[-1] * 1000:.0f} ms), {calls['exit'] + calls['segv']} crashes, "
            f"{calls['sleep']} timeouts, {calls['failed']} failed, "
            f"{stats['worker_restarts']} worker restarts; {probes.splitlines()[-1:]}"
        )
        assert not tally.failures, f"{calls['failed']} calls failed: {tally.failures}"
        assert all(calls[k] for k in MIX), f"some kind of call never ran: {dict(calls)}"
        assert probe.returncode == 0, probes

        # The pool is whole again: nothing in flight or queued, every worker
        # replaced once per crash or timeout, and nothing leaked.
        stats = rt.wait_until(
            lambda s: s["inflight"] == 0 and s["queued"] == 0 and s["workers"] == pool,
            timeout=SETTLE_SECONDS,
        )
        assert stats["worker_restarts"] == bad
        assert httpx.get(rt.url + "/_/ready", timeout=10).status_code == 200
        r = httpx.get(rt.url + "/json", timeout=10)
        assert (r.status_code, r.json()) == (200, {"ok": True, "n": [1, 2]})
        assert rt.proc.poll() is None
        footprint.assert_nothing_leaked()
        assert not unexpected_log_lines(rt), "\n".join(unexpected_log_lines(rt)[:20])
    finally:
        if probe is not None and probe.poll() is None:
            probe.kill()
            probe.wait(10)
        with capsys.disabled():
            print(f"\n{summary or f'churn soak: {dict(tally.calls)} (stopped early)'}")
        rt.stop()
