"""Admission control with real processes: the concurrency limit holds under
a burst, the short queue fills, then 429 with Retry-After."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import httpx
import pytest

from tests.integration.runtime.runtime_harness import start_runtime

pytestmark = pytest.mark.integration


def test_saturation_queues_then_429_with_retry_after(tmp_path: Path) -> None:
    rt = start_runtime(tmp_path, "app.py", concurrency=1, queue_depth=1, timeout_seconds=30)
    try:
        results: dict[str, int] = {}

        def call(name: str) -> None:
            results[name] = httpx.get(rt.url + "/sleep?s=1.5", timeout=60).status_code

        first = threading.Thread(target=call, args=("first",))
        first.start()
        rt.wait_until(lambda s: s["inflight"] == 1)
        second = threading.Thread(target=call, args=("queued",))
        second.start()
        rt.wait_until(lambda s: s["queued"] == 1)

        r = httpx.get(rt.url + "/json", timeout=30)
        assert r.status_code == 429
        assert r.headers["retry-after"] == "1"
        assert r.json()["error"] == "Runtime.Overloaded"
        ready = httpx.get(rt.url + "/_/ready", timeout=30)
        assert ready.status_code == 429

        first.join(60)
        second.join(60)
        assert results == {"first": 200, "queued": 200}
        assert httpx.get(rt.url + "/_/ready").status_code == 200
        assert "Runtime.Overloaded" in httpx.get(rt.url + "/metrics").text
    finally:
        rt.stop()


def test_burst_never_exceeds_the_concurrency_limit(tmp_path: Path) -> None:
    marker_dir = tmp_path / "running"
    marker_dir.mkdir()
    rt = start_runtime(tmp_path, "app.py", concurrency=3, queue_depth=64, timeout_seconds=30)
    observed: list[int] = []
    stop = threading.Event()

    def watch() -> None:
        with httpx.Client(base_url=rt.url, timeout=30) as c:
            while not stop.is_set():
                observed.append(c.get("/_/stats").json()["inflight"])

    async def burst() -> list[int]:
        async with httpx.AsyncClient(base_url=rt.url, timeout=60) as c:
            calls = [c.get("/track", params={"dir": str(marker_dir)}) for _ in range(12)]
            return [r.status_code for r in await asyncio.gather(*calls)]

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        statuses = asyncio.run(burst())
    finally:
        stop.set()
        watcher.join(30)
        rt.stop()
    assert statuses == [200] * 12
    running = [int(n) for n in (tmp_path / "running.log").read_text().split()]
    assert len(running) == 12
    assert max(running) <= 3  # handlers running at once, counted by the handlers
    assert max(running) >= 2  # and the burst really did run in parallel
    assert observed and max(observed) <= 3
