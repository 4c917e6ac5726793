"""A test function for the async path: the event says what to do, and every
call appends one line (invocation id, attempt, time) to the event's log
file, so a test sees each attempt from the function's side."""

import json
import os
import time

from ember_runtime import Response


def handle(event, context):
    if not isinstance(event, dict):
        event = {"do": "ok", "raw": event if isinstance(event, str) else repr(event)}
    headers = context.headers
    log = event.get("log")
    if log:
        line = {
            "id": headers.get("x-ember-invocation-id"),
            "attempt": headers.get("x-ember-attempt"),
            "key": headers.get("idempotency-key"),
            "t": time.time(),
            "n": event.get("n"),
        }
        with open(log, "a") as f:
            f.write(json.dumps(line) + "\n")
    do = event.get("do", "ok")
    if do == "fail":
        return Response({"boom": True}, status=500)
    if do == "bad":
        return Response({"bad": "request"}, status=422)
    if do == "busy":
        return Response({"busy": True}, status=429)
    if do == "fixable" and not os.path.exists(event["fix"]):  # fails until fixed
        return Response({"not": "fixed"}, status=503)
    if do == "sleep":
        time.sleep(float(event.get("s", 0.1)))
    return {"ok": True, "n": event.get("n"), "echo": event.get("echo")}
