"""A test function that does whatever the request path asks for."""

import ctypes
import hashlib
import os
import time

from ember_runtime import Response


def _track(marker_dir):
    # Count handlers running at once across worker processes via files.
    me = os.path.join(marker_dir, f"{os.getpid()}-{time.monotonic_ns()}")
    open(me, "w").close()
    try:
        running = len(os.listdir(marker_dir))
        with open(marker_dir + ".log", "a") as log:
            log.write(f"{running}\n")
        time.sleep(0.3)
    finally:
        os.unlink(me)


def handle(event, context):
    path = context.path
    if path == "/json":
        return {"ok": True, "n": [1, 2]}
    if path == "/digest":  # what arrived, for the streaming tests
        data = event if isinstance(event, bytes) else str(event).encode()
        return {"len": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    if path == "/big":  # n bytes of a repeating pattern
        n = int(context.query.get("n", "0"))
        return (bytes(range(256)) * (n // 256 + 1))[:n]
    if path == "/list":
        return [1, "two", None]
    if path == "/text":
        return "héllo"
    if path == "/bytes":
        return b"\x00\x01\xff"
    if path == "/none":
        return None
    if path == "/response":
        return Response({"created": 1}, status=201, headers={"x-extra": "yes"})
    if path == "/response-text":
        return Response("teapot", status=418, headers={"content-type": "text/x-tea"})
    if path == "/echo":
        return {
            "event": event if not isinstance(event, bytes) else event.hex(),
            "event_type": type(event).__name__,
            "request_id": context.request_id,
            "function": context.function,
            "method": context.method,
            "path": context.path,
            "query": context.query,
            "headers": context.headers,
            "traceparent": context.traceparent,
            "remaining_ms": context.remaining_ms(),
        }
    if path == "/log":
        context.logger.info("hello from the handler", answer=42)
        return "logged"
    if path == "/raise":
        raise ValueError("boom")
    if path == "/exit":
        os._exit(3)
    if path == "/segv":
        ctypes.string_at(0)
    if path == "/sleep":
        time.sleep(float(context.query.get("s", "1")))
        return {"slept": context.query.get("s")}
    if path == "/pid":
        return {"pid": os.getpid()}
    if path == "/track":
        _track(context.query["dir"])
        return "tracked"
    if path == "/bad-return":
        return object()
    return {"path": path}
