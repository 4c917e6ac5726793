"""An async test function: runs on the server's event loop."""

import asyncio
import os


async def handle(event, context):
    if context.path == "/sleep":
        await asyncio.sleep(float(context.query.get("s", "1")))
        return "slept"
    if context.path == "/raise":
        raise RuntimeError("async boom")
    return {"async": True, "event": event, "pid": os.getpid(), "request_id": context.request_id}
