"""Frames between the server and its workers."""

from __future__ import annotations

import pytest

from ember_runtime.http.reply import http_head
from ember_runtime.wire import frame, loads

pytestmark = pytest.mark.unit


def test_frames_round_trip_and_heads_are_http() -> None:
    req = ("r", "GET", b"/", b"a=1", [(b"h", b"v")], b"body", 1.5)
    data = frame(req)
    assert loads(data[4:]) == req
    head = http_head(201, [("content-type", "text/plain")], 5)
    assert head == b"HTTP/1.1 201 Created\r\ncontent-type: text/plain\r\ncontent-length: 5\r\n"
    # 204 and 304 never carry a body, so never a content-length either.
    assert http_head(204, [], 0) == b"HTTP/1.1 204 No Content\r\n"
    assert http_head(304, [], 0) == b"HTTP/1.1 304 Not Modified\r\n"


def test_frame_end_finds_whole_frames_only() -> None:
    from ember_runtime.wire import HEADER_LEN, frame, frame_end

    one, two = frame(("a", 1)), frame({"b": b"x" * 100})
    assert frame_end(one) == len(one)  # exactly one frame: take it as it is
    assert frame_end(one + two) == len(one)
    assert frame_end(one[:-1]) == 0 and frame_end(one[: HEADER_LEN - 1]) == 0
    assert frame_end(bytearray(one + two[:5])) == len(one)
    assert frame_end(b"") == 0
