"""What the gateway forwards: the request head it writes to a pod and the
response head it writes back, as bytes, in one pass over the headers.

Hop-by-hop headers (RFC 9110 §7.6.1, and any a ``Connection`` header names)
describe one connection and stop here. Framing is re-done on each side: a
whole body gets its ``content-length``; a streamed one keeps the length
its sender declared, or goes chunked (``CHUNKED``), or, to an HTTP/1.0
caller, ends with the connection (``UNTIL_CLOSE``). The pod learns
who called through ``X-Forwarded-For/Proto/Host``; ``traceparent`` is kept
when well-formed, else a trace is started here; ``x-request-id`` is always
the gateway's request id, so the gateway's and the runtime's log lines of
one call share it. A caller cannot smuggle its own signature header.
"""

from __future__ import annotations

import random
from http import HTTPStatus

from ember_runtime.tracing import is_traceparent

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
# Replaced by the gateway on the way in.
_REQUEST_DROP = HOP_BY_HOP | {
    b"content-length",
    b"expect",
    b"x-request-id",
    b"x-ember-signature",
    b"x-forwarded-for",
}
_RESPONSE_DROP = HOP_BY_HOP | {b"content-length"}
# Body lengths that are not lengths: how a streamed body of unknown length is framed.
CHUNKED = -1
UNTIL_CLOSE = -2


def new_traceparent() -> bytes:
    return b"00-%032x-%016x-01" % (random.getrandbits(128) | 1, random.getrandbits(64) | 1)


def _named_by_connection(headers: list[tuple[bytes, bytes]]) -> frozenset[bytes]:
    named: set[bytes] = set()
    for name, value in headers:
        if name.lower() == b"connection":
            named.update(t.strip().lower() for t in value.split(b",") if t.strip())
    return frozenset(named)


def request_head(
    method: bytes,
    target: bytes,
    headers: list[tuple[bytes, bytes]],
    request_id: bytes,
    client_ip: bytes,
    body_len: int,
) -> bytes:
    """The complete head (with the blank line) of the request sent to a pod,
    unsigned (``signed`` adds the signature for the pod it goes to)."""
    parts = [method, b" ", target, b" HTTP/1.1\r\n"]
    drop: frozenset[bytes] = _REQUEST_DROP
    forwarded: list[bytes] = []
    host = b""
    proto = fhost = trace = False
    for name, value in headers:
        low = name.lower()
        if low in drop:
            if low == b"connection":
                drop = drop | _named_by_connection(headers)
            elif low == b"x-forwarded-for":
                forwarded.append(value)
            continue
        if low == b"host":
            host = value
        elif low == b"traceparent":
            if not is_traceparent(value):
                continue
            trace = True
        elif low == b"x-forwarded-proto":
            proto = True
        elif low == b"x-forwarded-host":
            fhost = True
        parts += (name, b": ", value, b"\r\n")
    if drop is not _REQUEST_DROP:  # a Connection header named more: filter again
        return request_head_filtered(method, target, headers, drop, request_id, client_ip, body_len)
    forwarded.append(client_ip)
    parts += (b"x-forwarded-for: ", b", ".join(forwarded), b"\r\n")
    if not proto:
        parts.append(b"x-forwarded-proto: http\r\n")
    if host:
        if not fhost:
            parts += (b"x-forwarded-host: ", host, b"\r\n")
    else:  # HTTP/1.0 callers may send none; the pod needs one
        parts.append(b"host: ember-gateway\r\n")
    if not trace:
        parts += (b"traceparent: ", new_traceparent(), b"\r\n")
    if body_len >= 0:
        parts += (b"x-request-id: ", request_id, b"\r\ncontent-length: %d\r\n" % body_len)
    else:
        parts += (b"x-request-id: ", request_id, b"\r\ntransfer-encoding: chunked\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


def signed(request: bytes, head_len: int, signature: bytes) -> bytes:
    """``request`` (a ``request_head`` of ``head_len`` bytes, then any body)
    with the signature header last in its head."""
    at = head_len - 2  # before the blank line
    return b"%bx-ember-signature: %b\r\n%b" % (request[:at], signature, request[at:])


def request_head_filtered(
    method: bytes,
    target: bytes,
    headers: list[tuple[bytes, bytes]],
    drop: frozenset[bytes],
    request_id: bytes,
    client_ip: bytes,
    body_len: int,
) -> bytes:
    keep = [(n, v) for n, v in headers if n.lower() not in drop or n.lower() == b"x-forwarded-for"]
    return request_head(method, target, keep, request_id, client_ip, body_len)


_STATUS: dict[int, bytes] = {}


def status_line(status: int) -> bytes:
    line = _STATUS.get(status)
    if line is None:
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = "Status"
        line = _STATUS[status] = b"HTTP/1.1 %d %s\r\n" % (status, reason.encode())
    return line


def response_head(
    status: int, headers: list[tuple[bytes, bytes]], body_len: int, head_only: bool
) -> bytes:
    """The head written back to the caller, without the final blank line
    (the HTTP core adds ``connection: close`` when it closes)."""
    parts = [status_line(status)]
    drop = _RESPONSE_DROP
    length = b""
    for name, value in headers:
        low = name.lower()
        if low in drop:
            if low == b"content-length":
                length = value
            elif low == b"connection":
                named = _named_by_connection(headers) - {b"close", b"keep-alive"}
                if named:  # rare: filter those too, and start again
                    named |= {b"connection"}
                    kept = [(n, v) for n, v in headers if n.lower() not in named]
                    return response_head(status, kept, body_len, head_only)
            continue
        parts += (name, b": ", value, b"\r\n")
    if status != 204 and status != 304 and not (100 <= status < 200):
        if head_only and length:  # a HEAD answer states the GET's length
            parts += (b"content-length: ", length, b"\r\n")
        elif body_len >= 0:
            parts.append(b"content-length: %d\r\n" % body_len)
        elif body_len == CHUNKED:
            parts.append(b"transfer-encoding: chunked\r\n")
    return b"".join(parts)
