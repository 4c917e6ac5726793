"""gateway_hop: hello world through the gateway against the same runtime
process called directly, on loopback, in interleaved rounds.

The gateway runs as its own process (``python -m ember_operator.gateway``
with a static feed file naming the runtime as the Function's one ready
pod), exactly the hot path a cluster gives it: route, header rewrite, the
per-pod cap, a pooled keep-alive hop, the answer copied back. Goals: at 64
connections at least 0.5x the direct requests/s; at 1 connection at most
150 us added to the p50. The runtime's concurrency is 64 so that its own
admission never queues what the gateway lets through.

The added latency is the median, over ``--latency-rounds`` rounds, of the
gateway's 1-connection p50 minus the direct p50 measured next to it (the
order rotates each round), with the spread of those differences (their
25th-75th percentiles). Its floor, in the same rounds: a bare relay (this
file with ``--relay``: uvloop, one upstream connection per client, bytes
copied both ways, no HTTP at all), the least any extra process hop on
loopback adds here.

    python bench/gateway_hop.py [--rounds 5] [--seconds 2] [--latency-rounds 15]
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

from _common import (
    PYTHON,
    free_port,
    median,
    percentile,
    ratio,
    report,
    start_ember_runtime,
    stop,
    wait_http,
    wrk,
)


def start_runtime(port: int, concurrency: int) -> subprocess.Popen[bytes]:
    return start_ember_runtime(port, concurrency=concurrency, function="bench/hello")


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


def relay(listen: int, target: int) -> None:
    """The floor of a process hop: copy bytes both ways, nothing else."""
    import asyncio

    import uvloop

    class Side(asyncio.Protocol):
        def __init__(self) -> None:
            self.other: asyncio.Transport | None = None
            self.pending: list[bytes] = []

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport: asyncio.Transport = transport  # type: ignore[assignment]

        def data_received(self, data: bytes) -> None:
            if self.other is None:
                self.pending.append(data)
            else:
                self.other.write(data)

        def connection_lost(self, exc: Exception | None) -> None:
            if self.other is not None:
                self.other.close()

    async def serve() -> None:
        loop = asyncio.get_running_loop()

        class Front(Side):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                super().connection_made(transport)
                self.pairing = loop.create_task(self.pair())

            async def pair(self) -> None:
                back_t, back = await loop.create_connection(Side, "127.0.0.1", target)
                back.other = self.transport
                self.other = back_t
                for data in self.pending:
                    back_t.write(data)
                self.pending = []

        server = await loop.create_server(Front, "127.0.0.1", listen, backlog=1024)
        await server.serve_forever()

    uvloop.run(serve())


def start_relay(port: int, target: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [PYTHON, __file__, "--relay", str(port), str(target)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_http(f"http://127.0.0.1:{port}/_/ready", proc=proc)
    return proc


def spread(xs: list[float]) -> tuple[float, float]:
    return percentile(xs, 25), percentile(xs, 75)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5, help="64-connection rounds")
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--latency-rounds", type=int, help="1-connection rounds of 1 s (3x --rounds)")
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument(
        "--relay", nargs=2, type=int, metavar=("LISTEN", "TARGET"), help=argparse.SUPPRESS
    )
    args = ap.parse_args()
    if args.relay:
        relay(*args.relay)
        return
    if args.latency_rounds is None:
        args.latency_rounds = 3 * args.rounds
    runs: dict[str, list[dict[str, float]]] = {k: [] for k in ("d64", "g64", "d1", "g1", "r1")}
    with tempfile.TemporaryDirectory() as tmp:
        rt_port, gw_port, admin, relay_port = free_port(), free_port(), free_port(), free_port()
        runtime = start_runtime(rt_port, args.concurrency)
        feed_file = Path(tmp, "feed.json")
        feed_file.write_text(json.dumps(feed(rt_port, args.concurrency)))
        gateway = start_gateway(gw_port, admin, feed_file)
        relayer = start_relay(relay_port, rt_port)
        direct = f"http://127.0.0.1:{rt_port}/"
        through = f"http://127.0.0.1:{gw_port}/fn/bench/hello/"
        relayed = f"http://127.0.0.1:{relay_port}/"
        try:
            for url in (direct, through, relayed):
                wrk(url, seconds=1, connections=64)
            for r in range(args.rounds):
                order = [("d", direct), ("g", through)]
                for side, url in order if r % 2 == 0 else order[::-1]:
                    runs[f"{side}64"].append(wrk(url, seconds=args.seconds, connections=64))
            trio = [("d", direct), ("g", through), ("r", relayed)]
            for r in range(args.latency_rounds):
                for side, url in trio[r % 3 :] + trio[: r % 3]:
                    runs[f"{side}1"].append(wrk(url, seconds=1, connections=1))
        finally:
            stop(relayer)
            stop(gateway)
            stop(runtime)
    rps_ratio = median(
        [ratio(g["rps"], d["rps"]) for d, g in zip(runs["d64"], runs["g64"], strict=True)]
    )
    diffs = [
        (g["p50_ms"] - d["p50_ms"]) * 1000 for d, g in zip(runs["d1"], runs["g1"], strict=True)
    ]
    relay_diffs = [
        (g["p50_ms"] - d["p50_ms"]) * 1000 for d, g in zip(runs["d1"], runs["r1"], strict=True)
    ]
    added_us = median(diffs)
    relay_us = median(relay_diffs)
    lo, hi = spread(diffs)
    rlo, rhi = spread(relay_diffs)
    res = {
        "direct_rps_64": median([r["rps"] for r in runs["d64"]]),
        "gateway_rps_64": median([r["rps"] for r in runs["g64"]]),
        "direct_p50_ms_1": median([r["p50_ms"] for r in runs["d1"]]),
        "gateway_p50_ms_1": median([r["p50_ms"] for r in runs["g1"]]),
        "rps_ratio": rps_ratio,
        "added_p50_us": added_us,
        "added_p50_us_iqr": [lo, hi],
        "added_p50_us_rounds": diffs,
        "relay_added_p50_us": relay_us,
        "relay_added_p50_us_iqr": [rlo, rhi],
        "relay_p50_ms_1": median([r["p50_ms"] for r in runs["r1"]]),
        "rps_goal_met": rps_ratio >= 0.5,
        "latency_goal_met": added_us <= 150,
        "gateway_non_2xx": sum(r["non_2xx"] for r in runs["g64"] + runs["g1"]),
    }
    lines = [
        f"direct runtime, 64 conns: {res['direct_rps_64']:.0f} req/s; "
        f"through the gateway: {res['gateway_rps_64']:.0f} req/s",
        f"throughput ratio (median of per-round ratios) {rps_ratio:.2f}x (goal >= 0.5) "
        f"{'MET' if res['rps_goal_met'] else 'MISSED'}",
        f"1 conn, added p50 (median of {len(diffs)} per-round differences): {added_us:.0f} us, "
        f"IQR {lo:.0f}-{hi:.0f} (goal <= 150) {'MET' if res['latency_goal_met'] else 'MISSED'}; "
        f"floor (a bare byte relay): {relay_us:.0f} us, IQR {rlo:.0f}-{rhi:.0f}",
        f"1 conn p50 (medians): direct {res['direct_p50_ms_1'] * 1000:.0f} us, "
        f"gateway {res['gateway_p50_ms_1'] * 1000:.0f} us, "
        f"relay {res['relay_p50_ms_1'] * 1000:.0f} us",
        f"non-2xx answers through the gateway: {res['gateway_non_2xx']:.0f}",
    ]
    report("gateway_hop", {**res, "args": vars(args), "runs": runs}, lines)


if __name__ == "__main__":
    main()
