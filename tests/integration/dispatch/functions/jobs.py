"""A test function for the async path: the event says what to do, and every
call appends one line (invocation id, attempt, start and end times) to the
event's log file, so a test sees each attempt from the function's side."""

import json
import os
import time

from ember_runtime import Response


def handle(event, context):
    started = time.time()
    answer = _run(event)
    _log(event, context, started)
    return answer


def _log(event, context, started):
    if not isinstance(event, dict):
        return
        event = {"do": "ok", "raw": event if isinstance(event, str) else repr(event)}
    headers = context.headers
    log = event.get("log")
    if log:
        line = {
            "id": headers.get("x-ember-invocation-id"),
            "attempt": headers.get("x-ember-attempt"),
            "key": headers.get("idempotency-key"),
            "t": started,
            "end": time.time(),
            "n": event.get("n"),
        }
        with open(log, "a") as f:
            f.write(json.dumps(line) + "\n")


def _run(event):
    if not isinstance(event, dict):
        return {"raw": event if isinstance(event, str) else repr(event)}
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
