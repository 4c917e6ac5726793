"""``python -m ember_runtime``: settings, the fork server, then the loop.

Order matters for boot time and for safety. The zygote is forked first,
before uvloop, httptools or any socket exist in this process, so it imports
the user module on the other core while this process imports its server
stack, and workers forked from it inherit nothing of the server.
"""

from __future__ import annotations

import os
import socket
import sys

# Function sources live on read-only mounts (a ConfigMap); never try to
# write .pyc files next to them.
sys.dont_write_bytecode = True

from ember_runtime import logs  # noqa: E402
from ember_runtime.config import Settings, parse_settings  # noqa: E402
from ember_runtime.contract import Handler, load_target  # noqa: E402
from ember_runtime.errors import LoadError, LoadFault  # noqa: E402
from ember_runtime.signals import process_start_time  # noqa: E402
from ember_runtime.wire import recv_frame  # noqa: E402
from ember_runtime.worker import run_zygote  # noqa: E402

TERMINATION_LOG = "/dev/termination-log"


def fail(exc: LoadError, function: str = "") -> int:
    """Report a load fault loudly and return its exit status."""
    code = exc.fault.code
    logs.emit("error", exc.message, error=code, function=function or None)
    try:
        sys.stderr.write(f"{code}: {exc.message}\n")
        sys.stderr.flush()
    except OSError:
        pass
    # Kubernetes shows this file in the pod's status; only write it where
    # the kubelet has mounted it.
    if os.path.exists(TERMINATION_LOG):
        try:
            with open(TERMINATION_LOG, "w") as f:
                f.write(f"{code}: {exc.message}"[:4000])
        except OSError:
            pass
    return exc.fault.exit_status


def _start_zygote(settings: Settings) -> tuple[socket.socket | None, Handler | None]:
    """Fork the zygote and wait for its verdict on the user module.

    Returns the control socket for a sync handler, or the handler itself
    (imported here too) for an async one, which runs on this loop.
    """
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pid = os.fork()
    if pid == 0:
        ours.close()
        run_zygote(theirs, settings.target, settings.source, settings.function)
    theirs.close()
    status = recv_frame(ours)
    if status is None:
        _, wstatus = os.waitpid(pid, 0)
        how = (
            f"signal {os.WTERMSIG(wstatus)}"
            if os.WIFSIGNALED(wstatus)
            else f"exit status {os.waitstatus_to_exitcode(wstatus)}"
        )
        raise LoadError(
            LoadFault.IMPORT_ERROR,
            f"the process importing {settings.source or settings.target!r} died ({how})",
        )
    if status[0] == "error":
        os.waitpid(pid, 0)
        raise LoadError(LoadFault[status[1]], status[2])
    if not status[1]:
        return ours, None
    ours.close()
    os.waitpid(pid, 0)
    return None, load_target(settings.target, settings.source)


def main(argv: list[str] | None = None) -> int:
    started_at = process_start_time()
    try:
        settings = parse_settings(sys.argv[1:] if argv is None else argv)
    except LoadError as exc:
        return fail(exc)
    try:
        ctrl, handler = _start_zygote(settings)
    except LoadError as exc:
        return fail(exc, settings.function)

    import uvloop

    from ember_runtime.server import serve
    from ember_runtime.signals import Signals

    signals = Signals(settings.function, enabled=settings.metrics, started_at=started_at)
    return uvloop.run(serve(settings, signals, ctrl, handler))


if __name__ == "__main__":
    sys.exit(main())
