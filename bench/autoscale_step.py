"""autoscale_step: concurrency stepping from 0 to 50, against the scaling
math alone and against the real autoscaler loop, both on a fake clock.

The math side drives ``FunctionScaler`` directly. The loop side runs
``Autoscaler.tick()`` with the real ``Collector`` reading ``/_/stats`` over
HTTP from a stand-in gateway on loopback (aiohttp), among ``--functions``
other, idle Functions, with an in-memory API that applies scale writes and
makes new replicas ready ``--ready-ticks`` ticks later. Two profiles: one
step 0 -> 50, and a staircase 0 -> 10 -> ... -> 50 (a minute per stair).
The peer is the math: the loop must decide exactly as it does.

Goals: the desired count (ceil(50 / target), within max) reached within one
tick of the panic condition; 0 oscillations (a count that turns from up to
down or back). Also reported: the loop's tick time with that many Functions.

    python bench/autoscale_step.py [--functions 1000] [--hold 180]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import math
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from aiohttp import web

from _common import free_port, median, percentile, report
from ember_operator.autoscaler.collect import Collector
from ember_operator.autoscaler.decide import (
    Bounds,
    FunctionScaler,
    Observation,
    Policy,
    direction_changes,
)
from ember_operator.autoscaler.gateways import StaticGateways
from ember_operator.autoscaler.loop import Autoscaler
from ember_operator.autoscaler.scale import Deployments, Functions

TICK = Policy().tick
TARGET, MAX, PEAK = 5, 20, 50
FN = ("bench", "step")


def profiles(hold_ticks: int) -> dict[str, list[int]]:
    lead = [0] * 5
    return {
        "step": lead + [PEAK] * hold_ticks,
        "staircase": lead + [c for c in range(10, PEAK + 1, 10) for _ in range(30)],
    }


class Cluster:
    """Replicas as a Deployment would have them: ready ``lag`` ticks after
    being asked for."""

    def __init__(self, lag: int) -> None:
        self.lag = lag
        self.replicas = 1
        self.pending: list[tuple[int, int]] = []  # (tick it is ready at, count)
        self.ready = 1

    def ask(self, tick: int, count: int) -> None:
        self.replicas = count
        self.pending.append((tick + self.lag, count))

    def advance(self, tick: int) -> None:
        while self.pending and self.pending[0][0] <= tick:
            self.ready = self.pending.pop(0)[1]


def verdict(load: list[int], desired: list[int], panic: list[bool]) -> dict[str, Any]:
    want = min(MAX, math.ceil(PEAK / TARGET))
    first_panic = next((i for i, p in enumerate(panic) if p), None)
    reached = next((i for i, d in enumerate(desired) if d >= want), None)
    peak = load.index(PEAK)
    lag = None if first_panic is None or reached is None else reached - first_panic
    return {
        "want": want,
        "panic_tick": first_panic,
        "reached_tick": reached,
        "ticks_from_panic": lag,
        "ticks_from_peak_load": None if reached is None else reached - peak,
        "oscillations": direction_changes(desired),
        "final": desired[-1],
        "scale_changes": sum(1 for a, b in itertools.pairwise(desired) if a != b),
    }


def run_math(load: list[int], lag: int) -> tuple[list[int], list[bool]]:
    """The desired counts (and panic flags) the math alone decides."""
    bounds = Bounds(min=0, max=MAX, target=TARGET, idle_seconds=600)
    cluster, now = Cluster(lag), 0.0
    scaler = FunctionScaler(now)
    desired, panic = [], []
    for tick, c in enumerate(load):
        now += TICK
        cluster.advance(tick)
        d = scaler.decide(now, Observation(c, c > 0), bounds, cluster.replicas, cluster.ready)
        if d.desired != cluster.replicas:
            cluster.ask(tick, d.desired)
        desired.append(d.desired)
        panic.append(d.panic)
    return desired, panic


class Api:
    def __init__(self, deployments: Deployments, cluster: Cluster) -> None:
        self.deployments, self.cluster = deployments, cluster
        self.tick = 0
        self.scale_writes = self.status_writes = 0

    async def scale(self, kind: str, namespace: str, name: str, replicas: int) -> bool:
        self.scale_writes += 1
        if (namespace, name) == FN:
            self.cluster.ask(self.tick, replicas)
        return True

    async def patch_status(self, *args: Any) -> bool:
        self.status_writes += 1
        return True


async def run_loop(load: list[int], lag: int, functions: int) -> dict[str, Any]:
    stats: dict[str, dict[str, int]] = {}
    app = web.Application()

    async def handler(request: web.Request) -> web.Response:
        return web.json_response({"functions": stats})

    app.router.add_get("/_/stats", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()

    table, deployments, cluster = Functions(), Deployments(), Cluster(lag)
    keys = [FN] + [("bench", f"idle-{i}") for i in range(functions - 1)]
    for ns, name in keys:
        scale = {"min": 0, "max": MAX, "target": TARGET, "idleSeconds": 600}
        await table.event(
            "ADDED", {"metadata": {"namespace": ns, "name": name}, "spec": {"scale": scale}}
        )
        owner = {"kind": "Function", "name": name, "controller": True}
        meta = {"namespace": ns, "name": name, "ownerReferences": [owner]}
        replicas = 1 if (ns, name) == FN else 0
        deployments.observe("ADDED", {"metadata": meta, "spec": {"replicas": replicas}})
    for key in keys[1:]:
        stats[f"{key[0]}/{key[1]}"] = {"inflight": 0, "held": 0, "requests_total": 3}
    now = [0.0]
    api = Api(deployments, cluster)
    loop = Autoscaler(
        api,
        StaticGateways([f"127.0.0.1:{port}"]),
        functions=table,
        deployments=deployments,
        collector=Collector(),
        clock=lambda: now[0],
        wall=lambda: "t",
    )
    desired, panic, tick_ms = [], [], []
    total = 0
    try:
        for tick, c in enumerate(load):
            now[0] += TICK
            api.tick = tick
            cluster.advance(tick)
            entry = deployments.entries[FN]
            entry.ready = cluster.ready
            total += c
            stats[f"{FN[0]}/{FN[1]}"] = {"inflight": c, "held": 0, "requests_total": total}
            t0 = time.perf_counter()
            decisions = await loop.tick()
            tick_ms.append((time.perf_counter() - t0) * 1000)
            desired.append(decisions[FN].desired)
            panic.append(decisions[FN].panic)
    finally:
        await loop.stop()
        await runner.cleanup()
    out = verdict(load, desired, panic)
    out["tick_ms"] = {"p50": median(tick_ms), "p99": percentile(tick_ms, 99)}
    out["scale_writes"], out["status_writes"] = api.scale_writes, api.status_writes
    out["_desired"] = desired
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--functions", type=int, default=1000, help="Functions the loop ticks over")
    ap.add_argument("--hold", type=int, default=90, help="ticks the step is held")
    ap.add_argument("--ready-ticks", type=int, default=1, help="ticks until a replica is ready")
    args = ap.parse_args()
    results: dict[str, Any] = {"functions": args.functions, "ready_ticks": args.ready_ticks}
    lines, met = [], True
    for name, load in profiles(args.hold).items():
        math_desired, math_panic = run_math(load, args.ready_ticks)
        math_side = verdict(load, math_desired, math_panic)
        loop_side = asyncio.run(run_loop(load, args.ready_ticks, args.functions))
        same = loop_side.pop("_desired") == math_desired
        loop_side["math_series_equal"] = same
        # A staircase whose stairs stay under 2x capacity never panics: the
        # stable window carries it, and only "no oscillation" applies.
        ok = all(
            (side["panic_tick"] is None or 0 <= (side["ticks_from_panic"] or 0) <= 1)
            and side["reached_tick"] is not None
            and side["oscillations"] == 0
            for side in (math_side, loop_side)
        )
        ok = ok and (name != "step" or math_side["panic_tick"] is not None)
        met = met and ok and same
        results[name] = {"math": math_side, "loop": loop_side, "goal_met": ok}
        for label, side in (("math", math_side), ("loop", loop_side)):
            lines.append(
                f"{name:9s} {label}: panic at tick {side['panic_tick']}, {side['want']} replicas "
                f"at tick {side['reached_tick']} ({side['ticks_from_panic']} after panic, "
                f"{side['ticks_from_peak_load']} after the load reached {PEAK}), "
                f"{side['oscillations']} oscillations, {side['scale_changes']} scale changes"
            )
        tm = loop_side["tick_ms"]
        lines.append(
            f"{name:9s} loop tick with {args.functions} Functions: p50 {tm['p50']:.2f} ms, "
            f"p99 {tm['p99']:.2f} ms; {loop_side['scale_writes']} scale writes, "
            f"{loop_side['status_writes']} status writes; same decisions as the math: {same}"
        )
    results["goal_met"] = met
    lines.append(f"goal (within 1 tick of panic, 0 oscillations): {'MET' if met else 'MISSED'}")
    report("autoscale_step", results, lines)


if __name__ == "__main__":
    main()
