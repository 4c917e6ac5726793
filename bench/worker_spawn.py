"""worker_spawn: how fast a dead worker is replaced from the warm pool.

Drives the runtime's own pool (zygote + pipes) in-process on uvloop. Each
sample kills an idle worker with SIGKILL and times (a) until the next call
is answered by a warm spare, and (b) until the zygote has forked a fresh
worker that said hello, i.e. the pool is back to strength. Goal: p99 of the
replacement <= 5 ms. The peer is what the zygote avoids: starting a fresh
interpreter that imports the function (sampled fewer times; it is slow).

    python bench/worker_spawn.py [--samples 200] [--cold-samples 15]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import PYTHON, REPO, median, percentile, ratio, report
from ember_runtime.wire import recv_frame

if TYPE_CHECKING:
    from ember_runtime.pool import WorkerPool
    from ember_runtime.workers import WorkerConn

HELLO = REPO / "examples" / "hello" / "main.py"


def start_zygote() -> socket.socket:
    """A zygote in a clean interpreter that imported exactly what the
    runtime imports before it forks (this script's own imports, httpx among
    them, would make every fork slower than in production)."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    code = (
        "import socket, sys; import ember_runtime.__main__;"
        "from ember_runtime.worker import run_zygote;"
        f"run_zygote(socket.socket(fileno={theirs.fileno()}), 'main:handle', "
        f"{str(HELLO)!r}, 'bench/hello')"
    )
    subprocess.Popen([PYTHON, "-c", code], pass_fds=[theirs.fileno()])
    theirs.close()
    status = recv_frame(ours)
    assert status == ("ok", False), status
    return ours


async def measure(ctrl: socket.socket, samples: int) -> tuple[list[float], list[float]]:
    from ember_runtime.pool import WorkerPool

    pool = WorkerPool(ctrl, size=3)
    back = _on_full_strength(pool)
    await pool.start()
    await asyncio.wait_for(back.wait(), 10)
    serve_ms: list[float] = []
    refill_ms: list[float] = []
    for _ in range(samples):
        back.clear()
        victim = pool.idle[-1]
        t0 = time.perf_counter()
        victim.kill()
        w = await pool.acquire(5.0)  # a warm spare, never the victim
        req: tuple[object, ...] = ("bench", "GET", b"/", b"", [], b"", time.time() + 5)
        reply = await pool.call(w, req, 5.0)
        serve_ms.append((time.perf_counter() - t0) * 1000)
        assert reply[0] == 200, reply
        await asyncio.wait_for(back.wait(), 10)
        refill_ms.append((time.perf_counter() - t0) * 1000)
    pool.close()
    return serve_ms, refill_ms


def _on_full_strength(pool: WorkerPool) -> asyncio.Event:
    """An event set whenever a worker's arrival brings the pool back to its
    size: the moment a replacement has been forked and said hello."""
    back = asyncio.Event()
    arrived = pool._arrived

    def hook(w: WorkerConn, pid: int) -> None:
        arrived(w, pid)
        if len(pool.workers) >= pool.size:
            back.set()

    pool._arrived = hook  # type: ignore[method-assign]
    return back


def cold_spawn_ms() -> float:
    code = (
        "import importlib.util, sys; sys.dont_write_bytecode = True;"
        f"s = importlib.util.spec_from_file_location('main', {str(HELLO)!r});"
        "m = importlib.util.module_from_spec(s); s.loader.exec_module(m)"
    )
    t0 = time.perf_counter()
    subprocess.run([PYTHON, "-c", code], check=True)
    return (time.perf_counter() - t0) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--cold-samples", type=int, default=15)
    args = ap.parse_args()
    ctrl = start_zygote()
    import uvloop

    serve_ms, refill_ms = uvloop.run(measure(ctrl, args.samples))
    cold = [cold_spawn_ms() for _ in range(args.cold_samples)]
    res = {
        "serve_after_kill_ms": {"p50": median(serve_ms), "p99": percentile(serve_ms, 99)},
        "refill_ms": {"p50": median(refill_ms), "p99": percentile(refill_ms, 99)},
        "cold_interpreter_ms": {"p50": median(cold), "p99": percentile(cold, 99)},
        "refill_vs_cold_p50": ratio(median(refill_ms), median(cold)),
        "goal_met": percentile(refill_ms, 99) <= 5.0,
        "samples": args.samples,
    }
    report(
        "worker_spawn",
        res,
        [
            f"next call served by a warm spare after a kill: p50 {median(serve_ms):.2f} ms, "
            f"p99 {percentile(serve_ms, 99):.2f} ms",
            f"fresh worker forked from the zygote and ready: p50 {median(refill_ms):.2f} ms, "
            f"p99 {percentile(refill_ms, 99):.2f} ms (goal p99 <= 5 ms) "
            f"{'MET' if res['goal_met'] else 'MISSED'}",
            f"peer, a new interpreter importing the function: p50 {median(cold):.1f} ms, "
            f"p99 {percentile(cold, 99):.1f} ms; zygote refill is "
            f"{res['refill_vs_cold_p50']:.3f}x of it",
        ],
    )


if __name__ == "__main__":
    main()
