"""JSON-line logs, one ``write`` per line.

Workers and the server share stderr. A line written by one ``os.write`` call
under PIPE_BUF bytes never interleaves with another process's line, which a
buffered ``logging`` handler in each process cannot promise. Handler logs
carry the request id and trace id so a platform log query finds one call.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from typing import Any

_STDERR = 2


def emit(level: str, msg: str, **fields: Any) -> None:
    """Write one JSON log line to stderr."""
    record: dict[str, Any] = {"ts": round(time.time(), 6), "level": level, "msg": msg}
    record.update(fields)
    line = json.dumps(record, default=str, separators=(",", ":")) + "\n"
    with contextlib.suppress(OSError):
        os.write(_STDERR, line.encode("utf-8", "replace"))


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
            from ember_runtime.contract import user_traceback

            fields.setdefault("exception", type(exc).__name__)
            fields.setdefault("traceback", user_traceback(exc))
        self._log("error", msg, args, fields)

    warn = warning
