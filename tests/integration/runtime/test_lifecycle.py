"""Start and stop: loud load failures, draining on SIGTERM, async handlers,
sources on read-only mounts, and the metrics switch."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.runtime.runtime_harness import FUNCTIONS, spawn, start_runtime

pytestmark = pytest.mark.integration


def run_to_exit(tmp: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    proc, log_path, _port = spawn(tmp, *args, env=env)
    try:
        code = proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
    return code, log_path.read_text()


@pytest.mark.parametrize(
    ("args", "status", "code", "says"),
    [
        (
            ["--target", "main:handle", "--source", "missing/main.py"],
            11,
            "Runtime.SourceNotFound",
            "does not exist",
        ),
        (
            ["--target", "nosuchmodule_ember:handle"],
            12,
            "Runtime.ImportModuleError",
            "no module named 'nosuchmodule_ember'",
        ),
        (
            ["--target", "syntax_error:handle", "--source", "syntax_error.py"],
            13,
            "Runtime.UserCodeSyntaxError",
            "syntax_error.py, line 1",
        ),
        (
            ["--target", "import_error:handle", "--source", str(FUNCTIONS / "import_error.py")],
            14,
            "Runtime.UserCodeImportError",
            "definitely_not_a_module_ember",
        ),
        (
            ["--target", "no_handler:handle", "--source", str(FUNCTIONS / "no_handler.py")],
            15,
            "Runtime.HandlerNotFound",
            "Found: handler, helper",
        ),
        (["--target", "no-colon"], 10, "Runtime.InvalidTarget", "module:function"),
        (
            ["--target", "app:handle", "--source", str(FUNCTIONS / "app.py"), "--concurrency", "x"],
            2,
            "Runtime.InvalidConfig",
            "EMBER_CONCURRENCY",
        ),
        ([], 2, "Runtime.InvalidConfig", "EMBER_TARGET"),
    ],
)
def test_load_failures_exit_with_a_stable_code(
    tmp_path: Path, args: list[str], status: int, code: str, says: str
) -> None:
    # Kept out of the repository's tree so linters never parse it.
    (tmp_path / "syntax_error.py").write_text("def handle(event, context)\n    return 1\n")
    exit_code, output = run_to_exit(tmp_path, *args)
    assert exit_code == status, output
    assert code in output
    assert says in output


def test_sigterm_drains_in_flight_work_then_exits_zero(tmp_path: Path) -> None:
    rt = start_runtime(tmp_path, "app.py", concurrency=5, timeout_seconds=30)
    results: list[int] = []
    lock = threading.Lock()

    def call() -> None:
        status = httpx.get(rt.url + "/sleep?s=1.5", timeout=60).status_code
        with lock:
            results.append(status)

    with httpx.Client(base_url=rt.url, timeout=30) as probe:
        assert probe.get("/_/ready").status_code == 200  # keeps a connection open
        callers = [threading.Thread(target=call) for _ in range(4)]
        for t in callers:
            t.start()
        rt.wait_until(lambda s: s["inflight"] == 4)
        rt.proc.send_signal(signal.SIGTERM)
        # Readiness fails as soon as the signal lands, on the connection that
        # was already open (new connections are refused).
        statuses = []
        for _ in range(200):
            statuses.append(probe.get("/_/ready").status_code)
            if statuses[-1] != 200:
                break
            time.sleep(0.01)
        assert statuses[-1] == 503, statuses
    for t in callers:
        t.join(60)
    assert rt.proc.wait(60) == 0
    assert results == [200] * 4  # none lost
    assert any(e.get("msg") == "draining" for e in rt.logs())


def test_async_handler_runs_on_the_server_loop(tmp_path: Path) -> None:
    rt = start_runtime(tmp_path, "aapp.py", timeout_seconds=1)
    try:
        r = httpx.post(rt.url + "/x", json={"a": 1})
        assert r.status_code == 200
        assert r.json()["event"] == {"a": 1}
        assert r.json()["pid"] == rt.proc.pid  # no worker hop for async handlers
        r = httpx.get(rt.url + "/raise")
        assert (r.status_code, r.json()["error"]) == (500, "Runtime.HandlerError")
        r = httpx.get(rt.url + "/sleep?s=10", timeout=30)
        assert (r.status_code, r.json()["error"]) == (504, "Runtime.Timeout")
        assert httpx.get(rt.url + "/").status_code == 200
    finally:
        assert rt.stop() == 0


def test_source_dir_gets_no_bytecode_and_siblings_import(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name in ("uses_sibling.py", "sibling_helper.py"):
        (src / name).write_text((FUNCTIONS / name).read_text())
    rt = start_runtime(tmp_path, src / "uses_sibling.py")
    try:
        assert httpx.get(rt.url + "/").text == "from a sibling module"
    finally:
        rt.stop()
    assert not (src / "__pycache__").exists()


def test_metrics_can_be_turned_off(tmp_path: Path) -> None:
    rt = start_runtime(tmp_path, "app.py", metrics=0)
    try:
        assert httpx.get(rt.url + "/json").status_code == 200
        assert httpx.get(rt.url + "/metrics").status_code == 404
        assert rt.stats()["requests_total"] == 1  # the autoscaler's signal stays
    finally:
        rt.stop()


def test_large_bodies_cross_the_worker_hop(tmp_path: Path) -> None:
    rt = start_runtime(tmp_path, "app.py", max_body_bytes=4 * 1024 * 1024)
    try:
        body = bytes(range(256)) * 8192  # 2 MiB, far beyond a pipe's buffer
        r = httpx.post(rt.url + "/echo", content=body, timeout=60)
        assert r.status_code == 200
        assert bytes.fromhex(r.json()["event"]) == body
    finally:
        rt.stop()
