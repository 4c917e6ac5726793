"""JSON-line logs, one ``write`` per line.

Workers and the server share stderr. A line written by one ``os.write`` call
under PIPE_BUF bytes never interleaves with another process's line, which a
buffered ``logging`` handler in each process cannot promise. Handler logs
carry the request id and trace id so a platform log query finds one call.

The server process never writes on its event loop: a slow log reader (a
full pipe to the container runtime) would otherwise stall every connection,
``/_/health`` included. There ``write_in_background`` hands each line to a
thread, through a bounded buffer; when the buffer is full, lines are dropped
and counted, and the count is logged once the reader catches up. Workers run
one call at a time and write directly: a blocked write costs their own call.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections import deque
from typing import Any

_STDERR = 2
MAX_BUFFERED_BYTES = 4 * 1024 * 1024


def _write(data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(_STDERR, view) :]


class _BackgroundWriter:
    """One thread doing the blocking writes for the event loop's process."""

    def __init__(self) -> None:
        self.lines: deque[bytes] = deque()
        self.size = 0
        self.dropped = 0
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._run, name="ember-logs", daemon=True)
        self.thread.start()

    def put(self, data: bytes) -> None:
        with self.cond:
            if self.size + len(data) > MAX_BUFFERED_BYTES:
                self.dropped += 1
                return
            self.lines.append(data)
            self.size += len(data)
            self.cond.notify()

    def _run(self) -> None:
        while True:
            with self.cond:
                while not self.lines:
                    self.cond.wait()
                data = self.lines.popleft()
                dropped, self.dropped = self.dropped, 0
            with contextlib.suppress(OSError):
                _write(data)
                if dropped:
                    _write(
                        _line(
                            "warning",
                            "log lines dropped: the log reader was too slow",
                            {"dropped": dropped},
                        )
                    )
            with self.cond:
                self.size -= len(data)
                if not self.lines:
                    self.cond.notify_all()

    def flush(self, timeout: float) -> None:
        with self.cond:
            self.cond.wait_for(lambda: not self.lines, timeout)


_writer: _BackgroundWriter | None = None


def write_in_background() -> None:
    """From now on this process writes log lines from a thread (see above)."""
    global _writer
    if _writer is None:
        _writer = _BackgroundWriter()


def flush(timeout: float = 2.0) -> None:
    """Wait (bounded) until buffered lines are written, e.g. before exiting."""
    if _writer is not None:
        _writer.flush(timeout)


def _forget_writer() -> None:
    # A child forked by user code has no writer thread: write directly there.
    global _writer
    _writer = None


os.register_at_fork(after_in_child=_forget_writer)


def _line(level: str, msg: str, fields: dict[str, Any]) -> bytes:
    record: dict[str, Any] = {"ts": round(time.time(), 6), "level": level, "msg": msg}
    record.update(fields)
    line = json.dumps(record, default=str, separators=(",", ":")) + "\n"
    return line.encode("utf-8", "replace")


def emit(level: str, msg: str, **fields: Any) -> None:
    """Write one JSON log line to stderr."""
    data = _line(level, msg, fields)
    writer = _writer
    if writer is not None:
        writer.put(data)
        return
    with contextlib.suppress(OSError):
        _write(data)


class FunctionLogger:
    """The logger handed to a handler as ``context.logger``.

    ``logger.info("charged", amount=3)`` writes
    ``{"level":"info","msg":"charged","amount":3,"request_id":...}``.
    Positional arguments format the message as the standard library's
    loggers do (``logger.info("hello %s", name)``), so code written for
    ``logging`` works unchanged.
    """

    __slots__ = ("_tags",)

    def __init__(self, **tags: Any) -> None:
        self._tags = {k: v for k, v in tags.items() if v is not None}

    def _log(self, level: str, msg: object, args: tuple[Any, ...], fields: dict[str, Any]) -> None:
        text = str(msg)
        if args:
            try:
                text = text % args
            except (TypeError, ValueError):
                text = f"{text} {args!r}"
        emit(level, text, **{**fields, **self._tags})

    def debug(self, msg: object, *args: Any, **fields: Any) -> None:
        self._log("debug", msg, args, fields)

    def info(self, msg: object, *args: Any, **fields: Any) -> None:
        self._log("info", msg, args, fields)

    def warning(self, msg: object, *args: Any, **fields: Any) -> None:
        self._log("warning", msg, args, fields)

    def error(self, msg: object, *args: Any, **fields: Any) -> None:
        self._log("error", msg, args, fields)

    def critical(self, msg: object, *args: Any, **fields: Any) -> None:
        self._log("critical", msg, args, fields)

    def exception(self, msg: object, *args: Any, **fields: Any) -> None:
        """Like ``error``, plus the traceback being handled (runtime frames removed)."""
        import sys

        exc = sys.exc_info()[1]
        if exc is not None:
            from ember_runtime.tracebacks import user_traceback

            fields.setdefault("exception", type(exc).__name__)
            fields.setdefault("traceback", user_traceback(exc))
        self._log("error", msg, args, fields)

    warn = warning
