"""Response heads as the HTTP core writes them."""

from __future__ import annotations

import pytest

from ember_runtime.http.reply import http_head

pytestmark = pytest.mark.unit


def test_heads_use_cached_lines_and_carry_the_request_id() -> None:
    for ctype in ("application/json", "text/plain; charset=utf-8", "application/octet-stream"):
        head = http_head(200, [("content-type", ctype)], 2, "rid-1")
        assert head == (
            b"HTTP/1.1 200 OK\r\ncontent-type: "
            + ctype.encode()
            + b"\r\nx-request-id: rid-1\r\ncontent-length: 2\r\n"
        )
    # Uncached names and values are encoded as before, in order.
    head = http_head(200, [("x-a", "\u00e9"), ("x-b", "\u2603")], 0)
    assert head == b"HTTP/1.1 200 OK\r\nx-a: \xe9\r\nx-b: ?\r\ncontent-length: 0\r\n"
