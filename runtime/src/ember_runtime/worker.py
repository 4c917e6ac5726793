"""The processes that run sync handlers: a fork server and its warm workers.

The server process owns every client connection and never calls a sync
handler, so a handler that raises, hangs, calls ``os._exit`` or segfaults
costs one worker and one 500/504, never the connection or the pod.

Workers are forked from a *zygote*: a process forked from the server before
its event loop, listening socket or any client connection exist, which then
imports the user module once. Forking it is a copy-on-write ``fork()``
(about a millisecond), so replacing a worker needs no interpreter start and
no import, and children inherit no client sockets (an inherited client fd
would keep a connection open after the server closed it).

For each worker the server makes two pipes (requests, replies) and passes
the worker's ends to the zygote over the control socket (``SCM_RIGHTS``);
the worker announces itself with its pid on the reply pipe, then serves
frames until the server closes the request pipe. It leads its own process
group, so the server can end it together with anything its handler forked.
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import socket
import sys
from typing import NoReturn

from ember_runtime.contract import Handler
from ember_runtime.errors import LoadError
from ember_runtime.invoke import internal_fault, invoke_sync
from ember_runtime.loader import is_async_handler, load_target
from ember_runtime.wire import HEADER_LEN, frame, frame_end, loads, send_frame

# Below glibc's mmap threshold: a bigger read buffer costs an mmap/munmap per call.
RECV_SIZE = 64 * 1024


def _quiet_signals() -> None:
    # Ctrl-C on a laptop reaches the whole process group; only the server
    # decides how to stop. SIGTERM keeps its default: die at once.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def serve_worker(req_fd: int, rep_fd: int, handler: Handler, function: str) -> NoReturn:
    """Answer invocation frames from ``req_fd`` on ``rep_fd`` until the server hangs up."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    # Lead a process group of its own, so that ending this worker (timeout,
    # crash, recycle) ends whatever the handler forked too.
    with contextlib.suppress(OSError):
        os.setpgid(0, 0)
    # SCHED_BATCH: a worker woken by a request does not preempt the server
    # that woke it (on a busy core it otherwise runs inside the server's
    # pipe write). The server keeps draining its event loop and the worker
    # runs on the next free slice, so the hop costs far less per call.
    # Unprivileged processes may always move to SCHED_BATCH.
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    with contextlib.suppress(AttributeError, ValueError):
        sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    read, write = os.read, os.write

    def send(data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[write(rep_fd, view) :]

    send(frame(os.getpid()))
    # One read per request in the common case: read what is there, then cut
    # frames out of it (a whole single frame is used as it is, unbuffered).
    buf = bytearray()
    while True:
        while not (end := frame_end(buf)):
            try:
                chunk = read(req_fd, RECV_SIZE)
            except InterruptedError:
                continue
            except OSError:
                chunk = b""
            if not chunk:
                os._exit(0)
            if not buf and frame_end(chunk) == len(chunk):
                req = loads(memoryview(chunk)[HEADER_LEN:])
                break
            buf += chunk
        else:
            req = loads(memoryview(buf)[HEADER_LEN:end])
            del buf[:end]
        try:
            data = frame(invoke_sync(handler, function, req))
        except Exception as exc:  # a runtime bug must cost one call, not the worker
            data = frame(internal_fault(exc, req))
        try:
            send(data)  # one write in the common case: a pipe takes 64 KiB at once
        except OSError:
            os._exit(0)


def run_zygote(ctrl: socket.socket, target: str, source: str | None, function: str) -> NoReturn:
    """Load the user module, report how it went, then fork workers on demand.

    Reports ``("ok", is_async)`` or ``("error", fault name, message)``. An
    async handler runs on the server's loop, so the zygote then exits.
    """
    _quiet_signals()
    try:
        try:
            handler = load_target(target, source)
        except LoadError as exc:
            send_frame(ctrl, ("error", exc.fault.name, exc.message))
            os._exit(0)
        is_async = is_async_handler(handler)
        send_frame(ctrl, ("ok", is_async))
        if is_async:
            os._exit(0)
        # Children are reaped by the kernel; the server tracks them by pipe.
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)
        # Everything imported so far is shared with every worker. Frozen,
        # the collector never walks (and so never copies) those pages.
        gc.collect()
        gc.freeze()
        while True:
            try:
                msg, fds, _flags, _addr = socket.recv_fds(ctrl, 64, 64)
            except InterruptedError:
                continue
            if not msg:
                os._exit(0)
            if len(fds) != 2:
                for fd in fds:
                    os.close(fd)
                continue
            req_fd, rep_fd = fds
            if os.fork() == 0:
                ctrl.close()
                serve_worker(req_fd, rep_fd, handler, function)
            os.close(req_fd)
            os.close(rep_fd)
    except BaseException:
        os._exit(70)
