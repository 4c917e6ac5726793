"""What is forwarded: hop-by-hop headers removed, X-Forwarded-* added,
traceparent kept or started, the request id and signature set by the
gateway only, and answers re-framed."""

from __future__ import annotations

import pytest

from ember_operator.gateway.headers import request_head, response_head, signed
from ember_runtime.tracing import is_traceparent

pytestmark = pytest.mark.unit

TRACE = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def parse(head: bytes) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    lines = head.split(b"\r\n")
    assert head.endswith(b"\r\n\r\n")
    out = []
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(b": ")
            out.append((name.lower(), value))
    return lines[0], out


def test_request_head_rewrites() -> None:
    head = request_head(
        b"POST",
        b"/echo?x=1",
        [
            (b"Host", b"gw.example"),
            (b"Connection", b"keep-alive, X-Secret"),
            (b"X-Secret", b"hop"),
            (b"Keep-Alive", b"timeout=5"),
            (b"Transfer-Encoding", b"chunked"),
            (b"TE", b"trailers"),
            (b"Upgrade", b"h2c"),
            (b"X-Forwarded-For", b"203.0.113.9"),
            (b"X-Request-Id", b"client-chosen"),
            (b"X-Ember-Signature", b"forged"),
            (b"traceparent", TRACE),
            (b"X-Custom", b"kept"),
            (b"Content-Length", b"999"),
        ],
        b"rid-1",
        b"10.1.2.3",
        5,
    )
    head = signed(head, len(head), b"t=1,v1=abc")  # as the gateway sends it to a pod
    line, headers = parse(head)
    assert line == b"POST /echo?x=1 HTTP/1.1"
    d = dict(headers)
    names = [n for n, _ in headers]
    for gone in (
        b"connection",
        b"x-secret",
        b"keep-alive",
        b"transfer-encoding",
        b"te",
        b"upgrade",
    ):
        assert gone not in d
    assert d[b"host"] == b"gw.example"
    assert d[b"x-forwarded-for"] == b"203.0.113.9, 10.1.2.3"
    assert d[b"x-forwarded-proto"] == b"http"
    assert d[b"x-forwarded-host"] == b"gw.example"
    assert d[b"traceparent"] == TRACE
    assert d[b"x-request-id"] == b"rid-1" and names.count(b"x-request-id") == 1
    assert d[b"x-ember-signature"] == b"t=1,v1=abc" and names.count(b"x-ember-signature") == 1
    assert d[b"content-length"] == b"5" and names.count(b"content-length") == 1
    assert d[b"x-custom"] == b"kept"


def test_a_trace_is_started_when_none_or_a_bad_one_came() -> None:
    for headers in ([], [(b"traceparent", b"garbage")]):
        _line, h = parse(request_head(b"GET", b"/", headers, b"r", b"1.2.3.4", 0))
        d = dict(h)
        assert is_traceparent(d[b"traceparent"])
        assert b"x-ember-signature" not in d
        assert d[b"host"]  # HTTP/1.1 to the pod needs one


def test_response_head_drops_hop_by_hop_and_reframes() -> None:
    head = response_head(
        200,
        [
            (b"content-type", b"application/json"),
            (b"transfer-encoding", b"chunked"),
            (b"connection", b"keep-alive"),
            (b"x-request-id", b"r"),
        ],
        12,
        False,
    )
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"transfer-encoding" not in head and b"connection" not in head
    assert head.endswith(b"content-length: 12\r\n")
    assert b"x-request-id: r\r\n" in head
    assert b"content-length" not in response_head(204, [], 0, False)
    assert b"content-length: 42" in response_head(
        200, [(b"content-length", b"42")], 0, head_only=True
    )
