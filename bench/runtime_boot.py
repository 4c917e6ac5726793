"""runtime_boot: process start to ready, against the floor of importing the
server stack (uvloop, httptools) plus the user module in a fresh interpreter.

"Ready" is the first 200 from ``/_/ready``, polled every 2 ms over loopback,
which is what a kubelet probe would see at best. Goal: <= 1.2x the floor.

    python bench/runtime_boot.py [--rounds 15]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import PYTHON, REPO, free_port, median, percentile, ratio, report, stop

HELLO = REPO / "examples" / "hello" / "main.py"
READY = b"GET /_/ready HTTP/1.1\r\nhost: x\r\n\r\n"


def ready_once(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(READY)
            return s.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def boot_ms() -> float:
    port = free_port()
    env = {
        **os.environ,
        "EMBER_TARGET": "main:handle",
        "EMBER_SOURCE": str(HELLO),
        "EMBER_PORT": str(port),
        "EMBER_HOST": "127.0.0.1",
    }
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [PYTHON, "-m", "ember_runtime"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = t0 + 30
        while time.perf_counter() < deadline:
            if ready_once(port):
                return (time.perf_counter() - t0) * 1000
            if proc.poll() is not None:
                raise RuntimeError(f"runtime exited {proc.returncode}")
            time.sleep(0.002)
        raise TimeoutError("runtime not ready in 30 s")
    finally:
        stop(proc)


def floor_ms() -> float:
    code = (
        "import sys; sys.dont_write_bytecode = True; import uvloop, httptools;"
        "import importlib.util as u;"
        f"s = u.spec_from_file_location('main', {str(HELLO)!r});"
        "m = u.module_from_spec(s); s.loader.exec_module(m)"
    )
    t0 = time.perf_counter()
    subprocess.run([PYTHON, "-c", code], check=True)
    return (time.perf_counter() - t0) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args()
    boots: list[float] = []
    floors: list[float] = []
    floor_ms(), boot_ms()  # warm the page cache
    for r in range(args.rounds):
        if r % 2:
            boots.append(boot_ms())
            floors.append(floor_ms())
        else:
            floors.append(floor_ms())
            boots.append(boot_ms())
    ratio_p50 = ratio(median(boots), median(floors))
    res = {
        "boot_ms": {"p50": median(boots), "p99": percentile(boots, 99)},
        "import_floor_ms": {"p50": median(floors), "p99": percentile(floors, 99)},
        "ratio_p50": ratio_p50,
        "goal_met": ratio_p50 <= 1.2,
        "rounds": args.rounds,
        "boots": boots,
        "floors": floors,
    }
    report(
        "runtime_boot",
        res,
        [
            f"runtime start -> /_/ready 200: p50 {median(boots):.1f} ms "
            f"(p99 {percentile(boots, 99):.1f} ms)",
            f"import uvloop + httptools + the function: p50 {median(floors):.1f} ms",
            f"ratio {ratio_p50:.2f}x (goal <= 1.2) {'MET' if res['goal_met'] else 'MISSED'}",
        ],
    )


if __name__ == "__main__":
    main()
