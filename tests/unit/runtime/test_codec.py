"""The codec as pure functions: request bodies to events, results to answers."""

from __future__ import annotations

import pytest

from ember_runtime.codec import InvalidResult, decode_event, encode_result
from ember_runtime.contract import Response
from ember_runtime.errors import BadEvent

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("ctype", "body", "expected"),
    [
        ("application/json", b'{"a":1}', {"a": 1}),
        ("application/json; charset=utf-8", b"[1]", [1]),
        ("application/vnd.api+json", b'"s"', "s"),
        ("text/plain", "ü".encode(), "ü"),
        ("text/plain; charset=latin-1", "ü".encode("latin-1"), "ü"),
        ("image/png", b"\x89PNG", b"\x89PNG"),
        (None, b"raw", b"raw"),
        ("application/json", b"", None),
    ],
)
def test_decode_event(ctype: str | None, body: bytes, expected: object) -> None:
    assert decode_event(ctype, body) == expected


def test_malformed_json_is_a_bad_event() -> None:
    with pytest.raises(BadEvent) as exc:
        decode_event("application/json", b"{")
    assert exc.value.fault.code == "Runtime.MalformedJSON"
    assert exc.value.fault.status == 400


def test_undecodable_text_is_a_bad_event() -> None:
    with pytest.raises(BadEvent) as exc:
        decode_event("text/plain", b"\xff\xfe")
    assert exc.value.fault.code == "Runtime.BadRequest"


@pytest.mark.parametrize(
    ("result", "status", "ctype", "body"),
    [
        ({"a": 1}, 200, "application/json", b'{"a":1}'),
        ([1, 2], 200, "application/json", b"[1,2]"),
        ("hi", 200, "text/plain; charset=utf-8", b"hi"),
        (b"\x00", 200, "application/octet-stream", b"\x00"),
        (bytearray(b"ab"), 200, "application/octet-stream", b"ab"),
        (None, 204, None, b""),
    ],
)
def test_encode_result(result: object, status: int, ctype: str | None, body: bytes) -> None:
    got_status, headers, got_body = encode_result(result)
    assert (got_status, got_body) == (status, body)
    assert dict(headers).get("content-type") == ctype


def test_response_keeps_its_status_and_headers() -> None:
    status, headers, body = encode_result(Response({"x": 1}, status=201, headers={"X-A": "b"}))
    assert status == 201
    assert ("X-A", "b") in headers and ("content-type", "application/json") in headers
    assert body == b'{"x":1}'
    _, headers, _ = encode_result(Response("t", headers={"Content-Type": "text/csv"}))
    assert [v for k, v in headers if k.lower() == "content-type"] == ["text/csv"]


@pytest.mark.parametrize(
    "bad",
    [
        object(),
        {"a": object()},
        Response(b"", status=99),
        Response("x", headers={"a": "b\r\nc: d"}),
    ],
)
def test_unencodable_results_are_rejected(bad: object) -> None:
    with pytest.raises(InvalidResult):
        encode_result(bad)


def test_dict_fast_path_matches_the_general_path() -> None:
    class D(dict):  # type: ignore[type-arg]
        pass

    assert encode_result({"a": [1, "\u00e9"]}) == encode_result(D({"a": [1, "\u00e9"]}))
    with pytest.raises(InvalidResult, match="not JSON-serialisable"):
        encode_result({"a": {1, 2}})
