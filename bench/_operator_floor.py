"""The ``operator_reconcile`` write floor: the least work any operator that
keeps issue 3's object model can do for a new Function, with no kopf at all.

It watches Functions, and for each one it has not seen renders the same
ConfigMap, Service and Deployment as Ember's operator (the same pure
renderers), creates them with the same client (``ember_operator.kube.client``),
and patches the same Ready status: four writes, nothing else. No retries,
no drift checks, no Deployment watch, no per-object state.

It is not a usable operator; it is the benchmark's ceiling. Measured next
to the no-op peer it tells how much of the gap is the API server's cost of
the writes themselves (which no operator code can remove) and how much is
Ember's own.

Run as a separate process, like the other sides:
``python bench/_operator_floor.py`` with EMBER_NAMESPACES (one namespace)
and EMBER_LIVENESS_ENDPOINT set, as bench/operator_reconcile.py does.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any
from urllib.parse import urlparse

from aiohttp import web

from ember_operator.config import Config
from ember_operator.diagnose.deployment import summarize_deployment
from ember_operator.diagnose.function import function_conditions
from ember_operator.kube.client import Kube
from ember_operator.kube.resources import path
from ember_operator.render.common import FunctionObject
from ember_operator.render.configmap import render_configmap
from ember_operator.render.deployment import render_deployment
from ember_operator.render.service import render_service

IN_FLIGHT = 64  # about Ember's concurrency against the same 32-connection pool


async def handle(kube: Kube, config: Config, body: dict[str, Any]) -> None:
    fn = FunctionObject.from_body(body)
    configmap = render_configmap(fn)
    if configmap is not None:
        await kube.request("POST", path("ConfigMap", fn.namespace), body=configmap)
    await kube.request("POST", path("Service", fn.namespace), body=render_service(fn))
    deployment = await kube.request(
        "POST", path("Deployment", fn.namespace), body=render_deployment(fn, config)
    )
    summary = summarize_deployment(deployment)
    await kube.patch_status(
        "Function",
        fn.namespace,
        fn.name,
        {
            "conditions": function_conditions(summary, None, ()),
            "replicas": summary.replicas,
            "readyReplicas": summary.ready_replicas,
            "observedGeneration": body["metadata"].get("generation"),
        },
    )


async def main() -> None:
    config = Config.from_env()
    (namespace,) = config.namespaces
    kube = await Kube.connect()
    liveness = urlparse(os.environ["EMBER_LIVENESS_ENDPOINT"])

    async def alive(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get(liveness.path, alive)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, liveness.hostname, liveness.port).start()

    slots = asyncio.Semaphore(IN_FLIGHT)
    seen: set[str] = set()
    tasks: set[asyncio.Task[None]] = set()

    async def one(body: dict[str, Any]) -> None:
        async with slots:
            try:
                await handle(kube, config, body)
            except Exception as e:  # say so: the benchmark then times out on it
                print(f"floor: {body['metadata']['name']}: {e!r}", file=sys.stderr, flush=True)

    functions = path("Function", namespace)
    while True:  # the watch times out now and then; the seen set makes it safe
        async for event in kube.watch(functions, {}, timeout_seconds=60):
            obj = event["object"]
            if event["type"] != "ADDED" or obj.get("status"):
                continue  # ERROR events (a stale watch) end with the stream's timeout
            uid = obj["metadata"]["uid"]
            if uid in seen:
                continue
            seen.add(uid)
            task = asyncio.create_task(one(obj))
            tasks.add(task)
            task.add_done_callback(tasks.discard)


if __name__ == "__main__":
    asyncio.run(main())
