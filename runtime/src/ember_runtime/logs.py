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
    """

    __slots__ = ("_tags",)

    def __init__(self, **tags: Any) -> None:
        self._tags = {k: v for k, v in tags.items() if v is not None}

    def _log(self, level: str, msg: object, fields: dict[str, Any]) -> None:
        emit(level, str(msg), **{**fields, **self._tags})

    def debug(self, msg: object, **fields: Any) -> None:
        self._log("debug", msg, fields)

    def info(self, msg: object, **fields: Any) -> None:
        self._log("info", msg, fields)

    def warning(self, msg: object, **fields: Any) -> None:
        self._log("warning", msg, fields)

    def error(self, msg: object, **fields: Any) -> None:
        self._log("error", msg, fields)
