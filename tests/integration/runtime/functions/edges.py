"""A sync test function for protocol edge cases.

Every call is recorded in ``calls.log`` in the working directory (the
harness runs each runtime in its own temporary directory), so a test can
tell whether a request ever reached the handler.
"""

import os
import time


def _record(context):
    with open("calls.log", "a") as f:
        f.write(f"{context.method} {context.path}\n")


def _fork_sleeper(pid_file):
    """Fork a child that sleeps for a minute; write its pid to ``pid_file``."""
    child = os.fork()
    if child == 0:
        try:
            time.sleep(60)
        finally:
            os._exit(0)
    with open(pid_file, "w") as f:
        f.write(str(child))
    return child


def handle(event, context):
    _record(context)
    path = context.path
    if path == "/echo":
        return {"method": context.method, "path": path, "headers": context.headers}
    if path == "/nan":
        return {"x": float("nan")}
    if path == "/inf":
        return {"x": float("inf")}
    if path == "/sleep":
        time.sleep(float(context.query.get("s", "1")))
        return {"slept": context.query.get("s")}
    if path == "/pid":
        return {"pid": os.getpid()}
    if path == "/fork-hang":
        _fork_sleeper(context.query["pidfile"])
        time.sleep(60)
        return "unreachable"
    if path == "/fork-crash":
        _fork_sleeper(context.query["pidfile"])
        os._exit(1)
    return {"method": context.method, "path": path}
