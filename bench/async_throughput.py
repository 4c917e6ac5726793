"""async_throughput: messages per second end to end through the async path
(POST /async -> Redis -> dispatcher -> gateway -> runtime -> result in
Redis) against the same number of synchronous calls through the same
gateway to the same runtime, in interleaved rounds.

Everything is a real process on loopback: ``redis-server`` (append-only
on, as the chart runs it), the runtime with the hello example, the
gateway (``python -m ember_operator.gateway`` with a static feed and the
async API on), and the dispatcher (``python -m ember_operator.dispatch``
with a static feed; ``--dispatchers`` replicas, 2 as the chart runs
them). One round of each side sends ``--messages`` requests from
``--clients`` concurrent clients:

* sync: each client POSTs to ``/fn/bench/hello`` and waits for the answer;
  the rate is messages / (time until the last answer);
* async: each client POSTs to ``/async/bench/hello`` (202); the rate is
  messages / (time until the dispatchers have finished the last one), read
  from their ``/metrics``.

* floor (bench/_async_floor.py): the same POSTs to a bare HTTP endpoint
  that XADDs each body and HSETs its record, and one consumer process per
  dispatcher replica that XREADGROUPs, makes the same call through the same
  gateway to the same runtime, HSETs the result and XACKs, with the same
  concurrency: the work any Redis-Streams async path must do, and none of
  the dispatcher's features; done when its consumer group has nothing left
  to read or acknowledge. floor/sync is the ceiling for the async rate on
  this machine; ember/floor is how close Ember comes to it.

Also reported: the CPU time per message of each process (and its
children: the runtime's workers), per side, from /proc: on a 2-core
machine the rates are CPU-bound, so this says where the difference goes.
And the queueing delay of each async message (its record's
``started`` minus ``created``: the time from the 202 to the call), p50 and
p99 over all async rounds (and the floor's, the same way). Goal: the async
rate at least 0.5x the sync rate.

    python bench/async_throughput.py [--rounds 3] [--messages 2000] [--clients 32]
                                     [--dispatchers 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import aiohttp

from _common import (
    BENCH,
    PYTHON,
    cpu_seconds,
    free_port,
    median,
    percentile,
    ratio,
    report,
    start_ember_runtime,
    stop,
    wait_http,
)

NS, FN = "bench", "hello"
_SUCCEEDED = re.compile(
    rb'^ember_dispatch_succeeded_total\{kind="function",namespace="bench",name="hello"\} (\S+)$',
    re.M,
)


def feed(runtime_port: int, concurrency: int) -> list[dict[str, object]]:
    return [
        {
            "kind": "Function",
            "metadata": {"namespace": NS, "name": FN},
            "spec": {"concurrency": concurrency, "timeoutSeconds": 30},
        },
        {
            "kind": "EndpointSlice",
            "metadata": {
                "namespace": NS,
                "name": "hello-1",
                "labels": {"kubernetes.io/service-name": FN},
            },
            "ports": [{"name": "http", "port": runtime_port}],
            "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}],
        },
    ]


def start_redis(workdir: Path, port: int) -> subprocess.Popen[bytes]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(workdir),
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        out = subprocess.run(
            ["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True, check=False
        ).stdout
        if "PONG" in out:
            return proc
        time.sleep(0.05)
    stop(proc)
    raise SystemExit("redis-server did not start")


def start(module: str, env: dict[str, str], ready_url: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [PYTHON, "-m", module],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_http(ready_url, proc=proc)
    return proc


async def sync_round(base: str, messages: int, clients: int) -> float:
    """Messages per second of synchronous calls through the gateway."""
    todo = iter(range(messages))
    async with aiohttp.ClientSession(base) as s:

        async def client() -> None:
            for n in todo:
                async with s.post(f"/fn/{NS}/{FN}", json={"name": str(n)}) as r:
                    await r.read()
                    assert r.status == 200, r.status

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        return messages / (time.perf_counter() - started)


async def succeeded(s: aiohttp.ClientSession, metrics_urls: list[str]) -> float:
    """Successes so far, summed over the dispatcher replicas."""
    total = 0.0
    for url in metrics_urls:
        async with s.get(url) as r:
            m = _SUCCEEDED.search(await r.read())
            total += float(m.group(1)) if m else 0.0
    return total


async def submit_all(s: aiohttp.ClientSession, messages: int, clients: int) -> list[str]:
    """POST ``messages`` async calls from ``clients`` concurrent loops (each
    must be accepted): the invocation ids."""
    todo = iter(range(messages))
    ids: list[str] = []

    async def client() -> None:
        for n in todo:
            async with s.post(f"/async/{NS}/{FN}", json={"name": str(n)}) as r:
                await r.read()
                assert r.status == 202, r.status
                ids.append(r.headers["x-ember-invocation-id"])

    await asyncio.gather(*(client() for _ in range(clients)))
    return ids


async def async_round(
    base: str, metrics_url: list[str], messages: int, clients: int
) -> tuple[float, list[str]]:
    """Messages per second through the async path, and the invocation ids."""
    async with aiohttp.ClientSession(base) as s:
        before = await succeeded(s, metrics_url)
        started = time.perf_counter()
        ids = await submit_all(s, messages, clients)
        while await succeeded(s, metrics_url) < before + messages:  # noqa: ASYNC110 (a poll)
            await asyncio.sleep(0.01)
        return messages / (time.perf_counter() - started), ids


async def floor_round(
    submit_base: str, redis_port: int, messages: int, clients: int
) -> tuple[float, list[str]]:
    """The floor's messages per second (the same POSTs, bench/_async_floor.py),
    done when its group has nothing unread and nothing unacknowledged."""
    from redis.asyncio import Redis

    from _async_floor import GROUP, STREAM

    r = Redis(host="127.0.0.1", port=redis_port)

    async def drained() -> bool:
        (group,) = [g for g in await r.xinfo_groups(STREAM) if g["name"] == GROUP.encode()]
        return bool(group["pending"] == 0 and group["lag"] == 0)

    async with aiohttp.ClientSession(submit_base) as s:
        started = time.perf_counter()
        ids = await submit_all(s, messages, clients)
        while not await drained():  # a poll, bounded
            if time.perf_counter() - started > 300:
                raise SystemExit("the floor did not finish its messages in 300 s")
            await asyncio.sleep(0.01)
        elapsed = time.perf_counter() - started
    await r.aclose()
    return messages / elapsed, ids


def wait_floor_consumers(redis_port: int, count: int, procs: list[subprocess.Popen[bytes]]) -> None:
    """Until ``count`` floor consumers have made the group and say they are
    ready (bounded)."""
    from redis import Redis

    r = Redis(host="127.0.0.1", port=redis_port)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            raise SystemExit("a floor consumer exited")
        if r.exists(*(f"floor:ready:floor-{i}" for i in range(count))) == count:
            return
        time.sleep(0.05)
    raise SystemExit("the floor consumers did not start")


async def queueing_delays(redis_port: int, ids: list[str], floor: bool = False) -> list[float]:
    """Seconds from each message's submission to the start of its call;
    every message must have succeeded (a failed call is no throughput)."""
    from redis.asyncio import Redis

    from _async_floor import record
    from ember_operator.dispatch import keys

    slot = keys.function_keys(NS, FN)
    r = Redis(host="127.0.0.1", port=redis_port)
    pipe = r.pipeline(transaction=False)
    for i in ids:
        pipe.hmget(record(i) if floor else slot.record(i), "status", "created", "started")
    got = await pipe.execute()
    await r.aclose()
    failed = [st for st, _, _ in got if st != b"succeeded"]
    assert not failed, f"{len(failed)} of {len(got)} did not succeed: {failed[:3]}"
    out = [float(s) - float(c) for _, c, s in got if c and s]
    return out


class CpuMeter:
    """CPU microseconds per message of each role (process tree), per side:
    where the machine's two cores go, which is what bounds the rates."""

    def __init__(self) -> None:
        self.roles: dict[str, list[int]] = {}
        self.per_msg: dict[str, dict[str, list[float]]] = {}

    def add(self, role: str, pid: int) -> None:
        self.roles.setdefault(role, []).append(pid)

    def _now(self) -> dict[str, float]:
        now = {r: sum(cpu_seconds(p) for p in pids) for r, pids in self.roles.items()}
        now["client"] = time.process_time()
        return now

    def round(self, side: str, messages: int, make: Any) -> Any:
        """``asyncio.run(make())``, and the CPU each role spent on it."""
        before = self._now()
        out = asyncio.run(make())
        after = self._now()
        got = self.per_msg.setdefault(side, {})
        for role, t in after.items():
            if after[role] - before[role] > 0:
                got.setdefault(role, []).append((t - before[role]) / messages * 1e6)
        return out

    def lines(self) -> list[str]:
        out = []
        for side, roles in self.per_msg.items():
            parts = {r: median(v) for r, v in roles.items()}
            total = sum(parts.values())
            shown = ", ".join(f"{r} {v:.0f}" for r, v in sorted(parts.items(), key=lambda x: -x[1]))
            out.append(f"CPU us/msg {side}: total {total:.0f} ({shown})")
        return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--concurrency", type=int, default=64, help="the runtime's and dispatcher's")
    ap.add_argument(
        "--dispatchers", type=int, default=2, help="dispatcher replicas (the chart runs 2)"
    )
    args = ap.parse_args()
    runs: dict[str, list[float]] = {"sync": [], "async": [], "floor": []}
    delays: list[float] = []
    floor_delays: list[float] = []
    procs: list[subprocess.Popen[bytes]] = []
    meter = CpuMeter()
    with tempfile.TemporaryDirectory() as tmp:
        redis_port, rt_port = free_port(), free_port()
        gw_port, gw_admin = free_port(), free_port()
        redis_url = f"redis://127.0.0.1:{redis_port}/0"
        feed_file = Path(tmp, "feed.json")
        feed_file.write_text(json.dumps(feed(rt_port, args.concurrency)))
        try:
            procs.append(start_redis(Path(tmp), redis_port))
            meter.add("redis", procs[-1].pid)
            procs.append(
                start_ember_runtime(rt_port, concurrency=args.concurrency, function="bench/hello")
            )
            meter.add("runtime", procs[-1].pid)
            procs.append(
                start(
                    "ember_operator.gateway",
                    {
                        "EMBER_HOST": "127.0.0.1",
                        "EMBER_PORT": str(gw_port),
                        "EMBER_ADMIN_PORT": str(gw_admin),
                        "EMBER_GATEWAY_FEED_FILE": str(feed_file),
                        "EMBER_REDIS_URL": redis_url,
                    },
                    f"http://127.0.0.1:{gw_admin}/_/ready",
                )
            )
            meter.add("gateway", procs[-1].pid)
            base = f"http://127.0.0.1:{gw_port}"
            metrics_url = []
            for i in range(args.dispatchers):  # replicas, as the chart runs them
                d_port = free_port()
                procs.append(
                    start(
                        "ember_operator.dispatch",
                        {
                            "EMBER_REDIS_URL": redis_url,
                            "EMBER_GATEWAY_URL": base,
                            "EMBER_DISPATCH_FEED_FILE": str(feed_file),
                            "EMBER_METRICS_HOST": "127.0.0.1",
                            "EMBER_METRICS_PORT": str(d_port),
                            "EMBER_ASYNC_CONCURRENCY": str(args.concurrency),
                            "POD_NAME": f"bench-dispatcher-{i}",
                        },
                        f"http://127.0.0.1:{d_port}/_/ready",
                    )
                )
                meter.add("dispatcher", procs[-1].pid)
                metrics_url.append(f"http://127.0.0.1:{d_port}/metrics")
            floor_port = free_port()
            floor_cmd = [PYTHON, str(BENCH / "_async_floor.py")]
            procs.append(
                subprocess.Popen(
                    [
                        *floor_cmd,
                        "submit",
                        "--port",
                        str(floor_port),
                        "--redis-port",
                        str(redis_port),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            meter.add("floor_submit", procs[-1].pid)
            floor_base = f"http://127.0.0.1:{floor_port}"
            wait_http(f"{floor_base}/ready", proc=procs[-1])
            consumers = []
            for i in range(args.dispatchers):  # one consumer per dispatcher replica
                consumers.append(
                    subprocess.Popen(
                        [
                            *floor_cmd,
                            *("consume", "--name", f"floor-{i}", "--concurrency"),
                            *(str(args.concurrency), "--gateway-port", str(gw_port)),
                            *("--redis-port", str(redis_port)),
                        ],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                )
            procs += consumers
            for c in consumers:
                meter.add("floor_consumer", c.pid)
            wait_floor_consumers(redis_port, args.dispatchers, consumers)
            warm = max(50, args.messages // 10)
            asyncio.run(sync_round(base, warm, args.clients))
            asyncio.run(async_round(base, metrics_url, warm, args.clients))
            asyncio.run(floor_round(floor_base, redis_port, warm, args.clients))
            rounds = {  # each side's round of args.messages
                "sync": lambda: sync_round(base, args.messages, args.clients),
                "floor": lambda: floor_round(floor_base, redis_port, args.messages, args.clients),
                "async": lambda: async_round(base, metrics_url, args.messages, args.clients),
            }
            for r in range(args.rounds):
                sides = ["sync", "floor", "async"]
                for side in sides if r % 2 == 0 else sides[::-1]:
                    got = meter.round(side, args.messages, rounds[side])
                    if side == "sync":
                        runs["sync"].append(got)
                        continue
                    rate, ids = got
                    runs[side].append(rate)
                    floor = side == "floor"
                    waited = asyncio.run(queueing_delays(redis_port, ids, floor=floor))
                    (floor_delays if floor else delays).extend(waited)
        finally:
            for p in reversed(procs):
                stop(p)

    def per_round(top: str, bottom: str) -> float:
        """The median of the per-round ratios ``top``/``bottom``."""
        return median([ratio(t, b) for t, b in zip(runs[top], runs[bottom], strict=True)])

    rate_ratio = per_round("async", "sync")
    res: dict[str, Any] = {
        "sync_msgs_per_s": median(runs["sync"]),
        "async_msgs_per_s": median(runs["async"]),
        "ratio": rate_ratio,
        "goal_met": rate_ratio >= 0.5,
        "floor_msgs_per_s": median(runs["floor"]),
        "floor_ratio": per_round("floor", "sync"),
        "ember_of_floor": per_round("async", "floor"),
        "queueing_delay_p50_ms": percentile(delays, 50) * 1000,
        "queueing_delay_p99_ms": percentile(delays, 99) * 1000,
        "queueing_delay_samples": len(delays),
        "floor_queueing_delay_p50_ms": percentile(floor_delays, 50) * 1000,
        "floor_queueing_delay_p99_ms": percentile(floor_delays, 99) * 1000,
    }
    lines = [
        f"{args.messages} messages x {args.rounds} rounds, {args.clients} clients, "
        f"{args.dispatchers} dispatcher(s): "
        f"sync through the gateway {res['sync_msgs_per_s']:.0f} msg/s; "
        f"async end to end {res['async_msgs_per_s']:.0f} msg/s; "
        f"floor {res['floor_msgs_per_s']:.0f} msg/s",
        f"ratio (median of per-round ratios) {rate_ratio:.2f}x (goal >= 0.5) "
        f"{'MET' if res['goal_met'] else 'MISSED'}; "
        f"floor/sync {res['floor_ratio']:.2f}x, ember/floor {res['ember_of_floor']:.2f}x",
        f"queueing delay (202 -> call starts): p50 {res['queueing_delay_p50_ms']:.1f} ms, "
        f"p99 {res['queueing_delay_p99_ms']:.1f} ms over {len(delays)} messages; "
        f"floor p50 {res['floor_queueing_delay_p50_ms']:.1f} ms, "
        f"p99 {res['floor_queueing_delay_p99_ms']:.1f} ms",
        *meter.lines(),
    ]
    res["cpu_us_per_message"] = {
        side: {r: median(v) for r, v in roles.items()} for side, roles in meter.per_msg.items()
    }
    report("async_throughput", {**res, "args": vars(args), "runs": runs}, lines)


if __name__ == "__main__":
    main()
