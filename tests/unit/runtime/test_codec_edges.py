"""Contract edge cases as pure functions: values JSON cannot carry, statuses
HTTP cannot send, and bodies nested deeper than the parser's stack."""

from __future__ import annotations

import math

import pytest

from ember_runtime.codec import InvalidResult, decode_event, encode_result
from ember_runtime.contract import Response
from ember_runtime.errors import MALFORMED_JSON, BadEvent

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "result",
    [
        {"x": math.nan},
        {"x": math.inf},
        {"x": -math.inf},
        [1.0, math.nan],
        {"deep": {"list": [0.5, math.inf]}},
        math.nan,
        Response({"x": math.nan}),
        Response([math.inf], status=201),
    ],
    ids=[
        "nan",
        "inf",
        "-inf",
        "list",
        "nested",
        "bare-float",
        "response",
        "response-201",
    ],
)
def test_non_finite_floats_are_not_json(result: object) -> None:
    # JSON has no NaN or Infinity; emitting them breaks strict clients.
    with pytest.raises(InvalidResult):
        encode_result(result)


@pytest.mark.parametrize("status", ["abc", "", "2OO", 100, 101, 150, 199])
def test_unsendable_response_status_is_invalid_result(status: object) -> None:
    # Not an int, or a 1xx (informational, never a final answer).
    with pytest.raises(InvalidResult):
        encode_result(Response("body", status=status))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("ctype", "body"),
    [
        ("application/json", b"[" * 50_000),
        ("application/json", b'{"a":' * 50_000),
        ("application/cloudevents+json", b"[" * 50_000),
    ],
    ids=["lists", "objects", "cloudevents"],
)
def test_deeply_nested_json_is_malformed_json(ctype: str, body: bytes) -> None:
    with pytest.raises(BadEvent) as exc:
        decode_event(ctype, body)
    assert exc.value.fault is MALFORMED_JSON
    assert exc.value.fault.status == 400
