"""Helpers to run real ``python -m ember_runtime`` processes on loopback.

Each runtime gets a free port and its output in a file, and is stopped with
SIGTERM (then SIGKILL), so a failing test never leaks workers.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

FUNCTIONS = Path(__file__).resolve().parent / "functions"
BOOT_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Runtime:
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, timeout: float = 30.0) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=timeout)

    def stats(self) -> dict[str, Any]:
        return httpx.get(self.url + "/_/stats", timeout=10).json()  # type: ignore[no-any-return]

    def logs(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out

    def wait_until(self, predicate: Any, timeout: float = 20.0) -> dict[str, Any]:
        """Poll /_/stats until ``predicate(stats)`` holds (bounded)."""
        deadline = time.monotonic() + timeout
        stats: dict[str, Any] = {}
        while time.monotonic() < deadline:
            stats = self.stats()
            if predicate(stats):
                return stats
            time.sleep(0.02)
        raise AssertionError(f"condition not reached in {timeout}s; last stats {stats}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


def descendants(root: int) -> dict[int, str]:
    """Processes below ``root`` (any depth) and their states, from /proc:
    how tests see that no worker or handler child leaked."""
    parent: dict[int, int] = {}
    state: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        parent[int(entry)] = int(fields[1])
        state[int(entry)] = fields[0].decode()
    out = {}
    for pid in parent:
        p, hops = parent[pid], 0
        while p > 1 and hops < 64:
            if p == root:
                out[pid] = state[pid]
                break
            p, hops = parent.get(p, 0), hops + 1
    return out


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def settle(what: str, measure: Any, want: Any, timeout: float = 10.0) -> Any:
    """Poll ``measure()`` until ``want(value)`` holds (bounded); return it."""
    deadline = time.monotonic() + timeout
    value = measure()
    while not want(value) and time.monotonic() < deadline:
        time.sleep(0.1)
        value = measure()
    assert want(value), f"{what}: still {value!r} after {timeout}s"
    return value


class Footprint:
    """The processes and descriptors a runtime holds now, so that a test can
    check, after hostile traffic, that it holds no more (bounded wait)."""

    def __init__(self, rt: Runtime) -> None:
        self.pid = rt.proc.pid
        self.procs = descendants(self.pid)
        self.fds = open_fds(self.pid)

    def assert_nothing_leaked(self) -> None:
        settle(
            f"processes under the runtime (were {self.procs})",
            lambda: descendants(self.pid),
            lambda now: len(now) == len(self.procs),
        )
        settle(
            f"runtime's open fds (were {self.fds})",
            lambda: open_fds(self.pid),
            lambda now: now <= self.fds + 2,
        )


def spawn(
    tmp: Path, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> tuple[subprocess.Popen[bytes], Path, int]:
    port = free_port()
    log_path = tmp / f"runtime-{port}.log"
    full_env = {
        **os.environ,
        "EMBER_HOST": "127.0.0.1",
        "EMBER_PORT": str(port),
        **(env or {}),
    }
    # The runtime must keep bytecode away from sources by itself.
    full_env.pop("PYTHONDONTWRITEBYTECODE", None)
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ember_runtime", *args],
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd or tmp,
        )
    return proc, log_path, port


def start_runtime(tmp: Path, source: str | Path, **settings: Any) -> Runtime:
    env = {f"EMBER_{k.upper()}": str(v) for k, v in settings.items()}
    env.setdefault("EMBER_TARGET", f"{Path(source).stem}:handle")
    path = FUNCTIONS / source if isinstance(source, str) else source
    env.setdefault("EMBER_SOURCE", str(path))
    proc, log_path, port = spawn(tmp, env=env)
    rt = Runtime(proc, port, log_path)
    deadline = time.monotonic() + BOOT_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"runtime exited {proc.returncode}: {log_path.read_text()}")
        try:
            if httpx.get(rt.url + "/_/ready", timeout=2).status_code == 200:
                return rt
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    rt.stop()
    raise AssertionError(f"runtime not ready in {BOOT_TIMEOUT}s: {log_path.read_text()}")
