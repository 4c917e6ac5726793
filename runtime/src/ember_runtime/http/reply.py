"""Answers as bytes: the ``Reply`` tuple, response heads and error bodies.

A reply is built once, where it is decided (often in a worker process, so
the encoding CPU stays off the server's core), and the connection only
writes it. Framing is the core's job alone: ``http_head`` writes the one
``content-length`` (none where HTTP forbids a body), and headers that
would contradict it are never taken from a handler (see ``contract``).
"""

from __future__ import annotations

import json

from ember_runtime.errors import CallFault

# (status, error code or "", response head without the final CRLF, body)
Reply = tuple[int, str, bytes, bytes]

STATUS_LINES: dict[int, bytes] = {}

# Statuses whose answers carry no body and no content-length (RFC 9110 §8.6).
BODYLESS = frozenset({204, 304})


def _status_line(code: int) -> bytes:
    from http import HTTPStatus

    try:
        reason = HTTPStatus(code).phrase
    except ValueError:
        reason = "Status"
    line = STATUS_LINES[code] = f"HTTP/1.1 {code} {reason}\r\n".encode("ascii")
    return line


# Header lines the runtime itself writes on most answers, encoded once.
_LINES: dict[tuple[str, str], bytes] = {
    ("content-type", v): f"content-type: {v}\r\n".encode("latin-1")
    for v in ("application/json", "text/plain; charset=utf-8", "application/octet-stream")
}


def http_head(
    status: int, headers: list[tuple[str, str]], body_len: int, request_id: str = ""
) -> bytes:
    """Status line and headers, without the blank line that ends them.

    ``request_id``, when given, becomes an ``x-request-id`` header. 204 and
    304 get no ``content-length``: they never have a body.
    """
    parts = [STATUS_LINES.get(status) or _status_line(status)]
    for kv in headers:
        line = _LINES.get(kv)
        parts.append(
            line if line is not None else f"{kv[0]}: {kv[1]}\r\n".encode("latin-1", "replace")
        )
    if request_id:
        parts.append(b"x-request-id: %s\r\n" % request_id.encode("latin-1", "replace"))
    if status not in BODYLESS:
        parts.append(b"content-length: %d\r\n" % body_len)
    return b"".join(parts)


def reply(
    request_id: str, status: int, headers: list[tuple[str, str]], body: bytes, code: str = ""
) -> Reply:
    if status in BODYLESS:
        body = b""
    return status, code, http_head(status, headers, len(body), request_id), body


def error_body(code: str, message: str, request_id: str) -> bytes:
    """The JSON body every failed call gets: ``{error, message, request_id}``."""
    return json.dumps(
        {"error": code, "message": message, "request_id": request_id}, separators=(",", ":")
    ).encode("utf-8")


def fault_reply(
    fault: CallFault, message: str, request_id: str, extra: list[tuple[str, str]] | None = None
) -> Reply:
    headers = [("content-type", "application/json")]
    if extra:
        headers.extend(extra)
    return reply(
        request_id, fault.status, headers, error_body(fault.code, message, request_id), fault.code
    )


def control_reply(status: int, headers: list[tuple[str, str]], body: bytes) -> Reply:
    """A reply the server writes itself (``/_/*``), without a request id."""
    return status, "", http_head(status, headers, len(body)), body
