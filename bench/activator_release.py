"""activator_release: requests held during a cold start, released the
moment the activator's probe finds the new pod ready.

N requests (1,000 by default, each on its own connection) arrive for a
Function with no pod and are held by an in-process gateway; then the pod
is listed, not yet ready, as an EndpointSlice lists a starting pod. For
``--start-ms`` the pod listens but is still loading: the activator's
probes reach the real runtime, and a 200 is reported as the 503
"starting" a loading runtime answers (a sync runtime forks its workers in
that time; an async one is ready the moment it listens: ``--start-ms 0``).
Then the probe succeeds and everything held is released.

The Function's ``concurrency`` is N, so the first good probe releases all
N at once: the hardest case. (With a lower concurrency only that many go
at the probe, and each further one when an answer frees a slot, in the
same callback that reads that answer.) The runtime runs 200 at once and
queues the rest, which bounds the answers, not the release.

Measured from the first good probe: when each request was written to the
pod (the release; goal p99 <= 10 ms, 0 lost), and when each caller got its
answer. Two peers in the same run: the same N requests written at once
straight to the ready runtime on already-open connections (the write
floor: no gateway release can beat writing N requests), with answer times
from the first write; and N fresh connections opened to it at once (the
connect floor: what a release that has to connect first pays).

    python bench/activator_release.py [--requests 1000] [--rounds 3] [--start-ms 100]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import free_port, median, percentile, report, start_ember_runtime, stop
from ember_operator.gateway import activator, upstream
from ember_operator.gateway.config import GatewaySettings
from ember_operator.gateway.server import Gateway

ASYNC_HELLO = "async def handle(event, context):\n    return {'hello': 'world'}\n"


def start_runtime(port: int, n: int, workdir: str) -> subprocess.Popen[bytes]:
    source = Path(workdir, "hello_async.py")
    source.write_text(ASYNC_HELLO)
    return start_ember_runtime(
        port,
        target="hello_async:handle",
        source=source,
        # The runtime runs at most a few hundred calls at once; the rest of
        # the burst waits in its queue (the release is what is measured).
        concurrency=min(n, 200),
        queue_depth=n,
        max_connections=4 * n + 64,
    )


async def open_clients(
    port: int, n: int
) -> list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    return list(
        await asyncio.gather(*(asyncio.open_connection("127.0.0.1", port) for _ in range(n)))
    )


async def answer(reader: asyncio.StreamReader) -> tuple[int, float]:
    line = await reader.readline()
    when = time.perf_counter()
    await reader.readuntil(b"\r\n\r\n")
    return int(line.split()[1]), when


class _Sink(asyncio.Protocol):
    def __init__(self) -> None:
        self.answered = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        if not self.answered.done():
            self.answered.set_result(None)


async def peer_round(port: int, n: int) -> dict[str, list[float]]:
    loop = asyncio.get_running_loop()
    t0 = time.perf_counter()
    opened = await asyncio.gather(
        *(loop.create_connection(_Sink, "127.0.0.1", port) for _ in range(n))
    )
    connect_ms = (time.perf_counter() - t0) * 1000
    req = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n"
    # The write floor: the same transport.write the gateway's release does.
    writes = []
    sent = time.perf_counter()
    for t, _p in opened:
        t.write(req)
        writes.append(time.perf_counter())
    await asyncio.gather(*(sink.answered for _t, sink in opened))
    for t, _p in opened:
        t.close()
    clients = await open_clients(port, n)
    sent = time.perf_counter()
    for _r, w in clients:
        w.write(req)
    results = await asyncio.gather(*(answer(r) for r, _w in clients))
    for _r, w in clients:
        w.close()
    return {
        "write_ms": [(t - writes[0]) * 1000 for t in writes],
        "connect_all_ms": [connect_ms],
        "answer_ms": [(when - sent) * 1000 for status, when in results if status == 200],
    }


async def gateway_round(runtime_port: int, n: int, rnd: int, start_ms: float) -> dict[str, Any]:
    settings = GatewaySettings(
        host="127.0.0.1",
        port=0,
        admin_port=0,
        queue_size=n,
        activation_timeout_seconds=30,
        max_connections=4 * n + 64,
    )
    writes: list[float] = []
    probe_ok: list[float] = []
    warm_at_probe: list[int] = []
    original_send = upstream.UpstreamConn.send

    def send(self: upstream.UpstreamConn, waiter: Any, data: bytes, head_only: bool) -> None:
        writes.append(time.perf_counter())
        original_send(self, waiter, data, head_only)

    listed_at = [float("inf")]
    real_probe = activator.probe_ready

    async def probe(host: str, port: int, path: bytes) -> int:
        status = await real_probe(host, port, path)
        loading = time.perf_counter() < listed_at[0] + start_ms / 1000
        return 503 if status == 200 and loading else status

    upstream.UpstreamConn.send = send  # type: ignore[method-assign]
    activator.probe_ready = probe  # type: ignore[assignment]
    try:
        async with Gateway(settings) as gw:

            def probed(b: Any, p: Any, t: float) -> None:
                probe_ok.append(t)
                warm_at_probe.append(len(p.idle))

            gw.activator.on_probe_ok = probed
            name = f"hello{rnd}"
            gw.feed.apply(
                "Function",
                "ADDED",
                {"metadata": {"namespace": "bench", "name": name}, "spec": {"concurrency": n}},
            )
            clients = await open_clients(gw.port, n)
            req = b"GET /fn/bench/%s/ HTTP/1.1\r\nhost: x\r\n\r\n" % name.encode()
            for _r, w in clients:
                w.write(req)
            backend = gw.proxy.backends[("bench", name)]
            while len(backend.held) < n:  # noqa: ASYNC110 (polling a count)
                await asyncio.sleep(0.01)
            listed_at[0] = time.perf_counter()
            gw.feed.apply(
                "EndpointSlice",
                "ADDED",
                {
                    "metadata": {
                        "namespace": "bench",
                        "name": f"{name}-x",
                        "labels": {"kubernetes.io/service-name": name},
                    },
                    "ports": [{"name": "http", "port": runtime_port}],
                    "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": False}}],
                },
            )
            results = await asyncio.gather(*(answer(r) for r, _w in clients))
            for _r, w in clients:
                w.close()
    finally:
        upstream.UpstreamConn.send = original_send  # type: ignore[method-assign]
        activator.probe_ready = real_probe  # type: ignore[assignment]
    t0 = probe_ok[0]
    return {
        "warm": warm_at_probe[0] if warm_at_probe else 0,
        "release_ms": [(t - t0) * 1000 for t in writes],
        "answer_ms": [(when - t0) * 1000 for status, when in results if status == 200],
        "lost": n - sum(1 for status, _ in results if status == 200),
    }


async def run(args: argparse.Namespace, runtime_port: int) -> dict[str, Any]:
    rounds = []
    peers = []
    for rnd in range(args.rounds):
        rounds.append(await gateway_round(runtime_port, args.requests, rnd, args.start_ms))
        peers.append(await peer_round(runtime_port, args.requests))
    return {"rounds": rounds, "peers": peers}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument(
        "--start-ms",
        type=float,
        default=100.0,
        help="how long the listed pod listens but answers its probe 503 (loading)",
    )
    args = ap.parse_args()
    import resource

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    import uvloop

    with tempfile.TemporaryDirectory() as workdir:
        port = free_port()
        runtime = start_runtime(port, args.requests, workdir)
        try:
            out = uvloop.run(run(args, port))
        finally:
            stop(runtime)
    rounds, peers = out["rounds"], out["peers"]
    release_p99 = median([percentile(r["release_ms"], 99) for r in rounds])
    answer_p99 = median([percentile(r["answer_ms"], 99) for r in rounds])
    peer_p99 = median([percentile(p["answer_ms"], 99) for p in peers])
    write_p99 = median([percentile(p["write_ms"], 99) for p in peers])
    connect_all = median([p["connect_all_ms"][0] for p in peers])
    lost = sum(r["lost"] for r in rounds) + sum(args.requests - len(p["answer_ms"]) for p in peers)
    res = {
        "release_p50_ms": median([percentile(r["release_ms"], 50) for r in rounds]),
        "release_p99_ms": release_p99,
        "release_p99_ms_rounds": [percentile(r["release_ms"], 99) for r in rounds],
        "warm_at_release": median([r["warm"] for r in rounds]),
        "answer_p99_ms": answer_p99,
        "peer_answer_p99_ms": peer_p99,
        "write_floor_p99_ms": write_p99,
        "connect_floor_ms": connect_all,
        "lost": lost,
        "release_goal_met": release_p99 <= 10 and lost == 0,
    }
    lines = [
        f"{args.requests} held requests, {args.rounds} rounds (medians of per-round figures), "
        f"pod loading {args.start_ms:g} ms after it is listed; "
        f"{res['warm_at_release']:.0f} connections open at the first good probe",
        f"released (written to the pod) after the first good probe: p50 "
        f"{res['release_p50_ms']:.1f} ms, p99 {release_p99:.1f} ms (goal <= 10) "
        f"{'MET' if res['release_goal_met'] else 'MISSED'} (per round: "
        + ", ".join(f"{x:.1f}" for x in res["release_p99_ms_rounds"])
        + ")",
        f"floors, same run: writing {args.requests} requests on open connections p99 "
        f"{write_p99:.1f} ms; opening {args.requests} connections {connect_all:.1f} ms",
        f"answered after the first good probe: p99 {answer_p99:.1f} ms; peer (the same burst "
        f"straight at the ready runtime, from the first write): p99 {peer_p99:.1f} ms",
        f"lost (not answered 200): {lost}",
    ]
    report("activator_release", {**res, "args": vars(args)}, lines)


if __name__ == "__main__":
    main()
