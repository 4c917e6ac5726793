"""A sync test function for the hostile-client tests: echo raw bytes,
answer with odd statuses and headers, crash, or sleep."""

import os
import time

from ember_runtime import Response


def handle(event, context):
    path = context.path
    if path == "/echo-bytes":
        # application/octet-stream in, the same bytes out
        return event if isinstance(event, bytes) else b""
    if path == "/status":
        return Response("x", status=int(context.query["code"]))
    if path == "/content-length-0":
        return Response("abc", headers={"Content-Length": "0"})
    if path == "/exit":
        os._exit(3)
    if path == "/sleep":
        time.sleep(float(context.query.get("s", "1")))
        return {"slept": context.query.get("s")}
    if path == "/pid":
        return {"pid": os.getpid()}
    return {"ok": True, "n": [1, 2]}
