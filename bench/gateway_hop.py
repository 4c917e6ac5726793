"""gateway_hop: hello world through the gateway against the same runtime
process called directly, on loopback, in interleaved rounds.

The gateway runs as its own process (``python -m ember_operator.gateway``
with a static feed file naming the runtime as the Function's one ready
pod), exactly the hot path a cluster gives it: route, header rewrite, the
per-pod cap, a pooled keep-alive hop, the answer copied back. Goals: at 64
connections at least 0.5x the direct requests/s; at 1 connection at most
150 us added to the p50. The runtime's concurrency is 64 so that its own
admission never queues what the gateway lets through.

    python bench/gateway_hop.py [--rounds 5] [--seconds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import PYTHON, REPO, free_port, median, ratio, report, stop, wait_http, wrk


def start_runtime(port: int, concurrency: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "EMBER_TARGET": "main:handle",
        "EMBER_SOURCE": str(REPO / "examples" / "hello" / "main.py"),
        "EMBER_PORT": str(port),
        "EMBER_HOST": "127.0.0.1",
        "EMBER_CONCURRENCY": str(concurrency),
        "EMBER_QUEUE_DEPTH": "1024",
        "EMBER_FUNCTION": "bench/hello",
    }
    proc = subprocess.Popen(
        [PYTHON, "-m", "ember_runtime"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_http(f"http://127.0.0.1:{port}/_/ready", proc=proc)
    return proc


def feed(runtime_port: int, concurrency: int) -> list[dict[str, object]]:
    return [
        {
            "kind": "Function",
            "metadata": {"namespace": "bench", "name": "hello"},
            "spec": {"concurrency": concurrency, "timeoutSeconds": 30},
        },
        {
            "kind": "EndpointSlice",
            "metadata": {
                "namespace": "bench",
                "name": "hello-1",
                "labels": {"kubernetes.io/service-name": "hello"},
            },
            "ports": [{"name": "http", "port": runtime_port}],
            "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}],
        },
    ]


def start_gateway(port: int, admin: int, feed_file: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "EMBER_HOST": "127.0.0.1",
        "EMBER_PORT": str(port),
        "EMBER_ADMIN_PORT": str(admin),
        "EMBER_GATEWAY_FEED_FILE": str(feed_file),
    }
    proc = subprocess.Popen(
        [PYTHON, "-m", "ember_operator.gateway"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_http(f"http://127.0.0.1:{admin}/_/ready", proc=proc)
    return proc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--concurrency", type=int, default=64)
    args = ap.parse_args()
    runs: dict[str, list[dict[str, float]]] = {k: [] for k in ("d64", "g64", "d1", "g1")}
    with tempfile.TemporaryDirectory() as tmp:
        rt_port, gw_port, admin = free_port(), free_port(), free_port()
        runtime = start_runtime(rt_port, args.concurrency)
        feed_file = Path(tmp, "feed.json")
        feed_file.write_text(json.dumps(feed(rt_port, args.concurrency)))
        gateway = start_gateway(gw_port, admin, feed_file)
        direct = f"http://127.0.0.1:{rt_port}/"
        through = f"http://127.0.0.1:{gw_port}/fn/bench/hello/"
        try:
            for url in (direct, through):
                wrk(url, seconds=1, connections=64)
            for r in range(args.rounds):
                order = [("d", direct), ("g", through)]
                for side, url in order if r % 2 == 0 else order[::-1]:
                    runs[f"{side}64"].append(wrk(url, seconds=args.seconds, connections=64))
                    runs[f"{side}1"].append(wrk(url, seconds=args.seconds, connections=1))
        finally:
            stop(gateway)
            stop(runtime)
    rps_ratio = median(
        [ratio(g["rps"], d["rps"]) for d, g in zip(runs["d64"], runs["g64"], strict=True)]
    )
    added_us = median(
        [(g["p50_ms"] - d["p50_ms"]) * 1000 for d, g in zip(runs["d1"], runs["g1"], strict=True)]
    )
    res = {
        "direct_rps_64": median([r["rps"] for r in runs["d64"]]),
        "gateway_rps_64": median([r["rps"] for r in runs["g64"]]),
        "direct_p50_ms_1": median([r["p50_ms"] for r in runs["d1"]]),
        "gateway_p50_ms_1": median([r["p50_ms"] for r in runs["g1"]]),
        "rps_ratio": rps_ratio,
        "added_p50_us": added_us,
        "rps_goal_met": rps_ratio >= 0.5,
        "latency_goal_met": added_us <= 150,
        "gateway_non_2xx": sum(r["non_2xx"] for r in runs["g64"] + runs["g1"]),
    }
    lines = [
        f"direct runtime, 64 conns: {res['direct_rps_64']:.0f} req/s; "
        f"through the gateway: {res['gateway_rps_64']:.0f} req/s",
        f"throughput ratio (median of per-round ratios) {rps_ratio:.2f}x (goal >= 0.5) "
        f"{'MET' if res['rps_goal_met'] else 'MISSED'}",
        f"1 conn p50: direct {res['direct_p50_ms_1'] * 1000:.0f} us, "
        f"gateway {res['gateway_p50_ms_1'] * 1000:.0f} us; added {added_us:.0f} us "
        f"(goal <= 150) {'MET' if res['latency_goal_met'] else 'MISSED'}",
        f"non-2xx answers through the gateway: {res['gateway_non_2xx']:.0f}",
    ]
    report("gateway_hop", {**res, "args": vars(args), "runs": runs}, lines)


if __name__ == "__main__":
    main()
