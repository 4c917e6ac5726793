"""Shared plumbing for ``bench/*.py``: statistics, free ports, waiting for a
server, running wrk, and one place that prints and saves results.

Every case compares against its peer in the same run, in interleaved rounds,
so a machine that is busier in one minute than the next (CI, a compile in the
background) skews both sides alike.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
# EMBER_BENCH_RESULTS lets the test that runs every case small keep its
# results out of the real ones.
RESULTS = Path(os.environ.get("EMBER_BENCH_RESULTS") or BENCH / "results")
PYTHON = sys.executable


def median(xs: Sequence[float]) -> float:
    return float(statistics.median(xs)) if xs else math.nan


def percentile(xs: Sequence[float], p: float) -> float:
    """Nearest-rank percentile, ``p`` in 0..100."""
    if not xs:
        return math.nan
    s = sorted(xs)
    k = max(0, min(len(s) - 1, math.ceil(p / 100 * len(s)) - 1))
    return float(s[k])


def ratio(a: float, b: float) -> float:
    return a / b if b else math.nan


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 30.0, proc: subprocess.Popen[Any] | None = None) -> None:
    """Poll ``url`` until it answers 200 (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before {url} was up")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.02)
    raise TimeoutError(f"{url} not up after {timeout}s")


def stop(proc: subprocess.Popen[Any], timeout: float = 10.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


_WRK_LAT = re.compile(r"^\s*(50|75|90|99)%\s+([\d.]+)(us|ms|s)\s*$", re.M)
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def wrk(url: str, *, seconds: float, connections: int, threads: int = 1) -> dict[str, float]:
    """Run wrk against ``url``; returns req/s, latency percentiles (ms), errors."""
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    out = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--latency",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    lat = {
        f"p{m.group(1)}_ms": float(m.group(2)) * _UNITS[m.group(3)] for m in _WRK_LAT.finditer(out)
    }
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    return {
        "rps": rps,
        **lat,
        "non_2xx": float(non2xx.group(1)) if non2xx else 0.0,
        "socket_errors": 1.0 if errors else 0.0,
    }


def _cpu_busy_idle() -> tuple[int, int]:
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, idle


def wait_quiet(
    busy_below: float = 0.3,
    seconds: int = 3,
    timeout: float = float(os.environ.get("EMBER_BENCH_QUIET_TIMEOUT", "120")),
) -> float:
    """Wait until this machine's CPUs have been mostly idle (less than
    ``busy_below`` of their time busy) for ``seconds`` in a row, so that one
    side of a benchmark does not pay for the last one's aftermath (the API
    server's garbage collection of a deleted namespace goes on for a while).
    Bounded by ``timeout`` (EMBER_BENCH_QUIET_TIMEOUT); returns the seconds
    waited."""
    start = time.monotonic()
    quiet = 0
    busy0, idle0 = _cpu_busy_idle()
    while quiet < seconds and time.monotonic() - start < timeout:
        time.sleep(1.0)
        busy1, idle1 = _cpu_busy_idle()
        total = (busy1 - busy0) + (idle1 - idle0)
        share = (busy1 - busy0) / total if total else 0.0
        quiet = quiet + 1 if share < busy_below else 0
        busy0, idle0 = busy1, idle1
    return time.monotonic() - start


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _tree(root: int) -> list[int]:
    """``root`` and its descendants now (by each process's parent id)."""
    parents: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            parents[int(d.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += [c for c, p in parents.items() if p == pid]
    return out


def cpu_seconds(root: int) -> float:
    """CPU time (user + system) used so far by ``root`` and its live
    descendants: what a role costs, read before and after a round."""
    total = 0
    for pid in _tree(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / _TICK


def cpu_note() -> str:
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = math.nan
    return f"{os.cpu_count()} cpus, load {load:.2f}"


def report(case: str, results: dict[str, Any], lines: Sequence[str]) -> None:
    """Print a summary and write ``bench/results/<case>.json``."""
    print(f"== {case} ({cpu_note()})")
    for line in lines:
        print("  " + line)
    RESULTS.mkdir(exist_ok=True)
    payload = {"case": case, "machine": cpu_note(), "time": time.time(), **results}
    (RESULTS / f"{case}.json").write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")


def start_ember_runtime(port: int, **settings: object) -> subprocess.Popen[bytes]:
    """``python -m ember_runtime`` on loopback serving the hello example
    (``target``/``source`` override it), ready before this returns.
    ``settings`` become ``EMBER_*`` variables, e.g. ``concurrency=2``."""
    env = {
        **os.environ,
        "EMBER_TARGET": "main:handle",
        "EMBER_SOURCE": str(REPO / "examples" / "hello" / "main.py"),
        "EMBER_PORT": str(port),
        "EMBER_HOST": "127.0.0.1",
        "EMBER_QUEUE_DEPTH": "1024",
        **{f"EMBER_{k.upper()}": str(v) for k, v in settings.items()},
    }
    proc = subprocess.Popen(
        [PYTHON, "-m", "ember_runtime"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_http(f"http://127.0.0.1:{port}/_/ready", proc=proc)
    return proc
