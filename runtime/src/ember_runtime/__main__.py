"""``python -m ember_runtime``: settings, the fork server, then the loop.

Order matters for boot time and for safety. The zygote is forked first,
with almost nothing imported (no json, no typing, no uvloop, no socket but
its control pair), and the workers are requested at once. The zygote then
imports the user module and forks workers on one core while this process
imports its server stack on the other; and the workers inherit nothing of
the server (no loop, no listening socket, no client connection).
"""

from __future__ import annotations

import os
import socket
import sys

from ember_runtime.config import Settings, parse_settings, process_start_time
from ember_runtime.errors import LoadError, LoadFault
from ember_runtime.pod import TERMINATION_LOG
from ember_runtime.wire import recv_frame, request_worker

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ember_runtime.contract import Handler


def fail(exc: LoadError, function: str = "") -> int:
    """Report a load fault loudly and return its exit status."""
    from ember_runtime import logs

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


class Zygote:
    """The forked fork server, seen from the server process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.pid = os.fork()
        if self.pid == 0:
            ours.close()
            from ember_runtime.worker import run_zygote

            run_zygote(theirs, settings.target, settings.source, settings.function)
        theirs.close()
        self.ctrl = ours
        # Queue the first workers now; the zygote forks them once it has
        # imported the user module, while this process imports uvloop.
        self.requested = [request_worker(ours) for _ in range(settings.pool_size)]

    def verdict(self) -> Handler | None:
        """Wait for the zygote's load result.

        Returns None for a sync handler (served by the zygote's workers), or
        the handler itself, imported here too, for an async one, which runs
        on this process's loop. Raises ``LoadError``.
        """
        status = recv_frame(self.ctrl)
        if status is not None and status[0] == "ok" and not status[1]:
            return None
        self._release()
        if status is None:
            _, wstatus = os.waitpid(self.pid, 0)
            how = (
                f"signal {os.WTERMSIG(wstatus)}"
                if os.WIFSIGNALED(wstatus)
                else f"exit status {os.waitstatus_to_exitcode(wstatus)}"
            )
            raise LoadError(
                LoadFault.IMPORT_ERROR,
                f"the process importing {self.settings.source or self.settings.target!r} "
                f"died ({how})",
            )
        os.waitpid(self.pid, 0)
        if status[0] == "error":
            raise LoadError(LoadFault[status[1]], status[2])
        from ember_runtime.loader import load_target

        return load_target(self.settings.target, self.settings.source)

    def _release(self) -> None:
        for fds in self.requested:
            for fd in fds:
                os.close(fd)
        self.requested = []
        self.ctrl.close()


def main(argv: list[str] | None = None) -> int:
    started_at = process_start_time()
    try:
        settings = parse_settings(sys.argv[1:] if argv is None else argv)
    except LoadError as exc:
        return fail(exc)
    zygote = Zygote(settings)

    import uvloop

    from ember_runtime.metrics import Metrics
    from ember_runtime.server import serve

    try:
        handler = zygote.verdict()
    except LoadError as exc:
        return fail(exc, settings.function)
    metrics = Metrics(settings.function, enabled=settings.metrics, started_at=started_at)
    if handler is not None:
        return uvloop.run(serve(settings, metrics, None, handler))
    return uvloop.run(serve(settings, metrics, zygote.ctrl, None, zygote.requested))


if __name__ == "__main__":
    sys.exit(main())
