"""The function contract as pure functions: events, results, targets."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from ember_runtime.contract import (
    Response,
    decode_event,
    encode_result,
    is_async_handler,
    load_target,
    make_context,
    parse_target,
    user_traceback,
    valid_traceparent,
)
from ember_runtime.errors import BadEvent, LoadError, LoadFault

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
    from ember_runtime.contract import InvalidResult

    with pytest.raises(InvalidResult):
        encode_result(bad)


def test_error_body_shape() -> None:
    from ember_runtime.http.reply import error_body

    body = error_body("Runtime.HandlerError", "boom", "rid")
    assert json.loads(body) == {
        "error": "Runtime.HandlerError",
        "message": "boom",
        "request_id": "rid",
    }


def test_context_from_request() -> None:
    tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    ctx = make_context(
        request_id="r1",
        function="ns/fn",
        deadline=time.time() + 2,
        method="GET",
        path="/p",
        query_string="a=1&b=2&a=3",
        headers=[("TraceParent", tp), ("X-Y", "z")],
    )
    assert ctx.query == {"a": "3", "b": "2"}
    assert ctx.headers == {"traceparent": tp, "x-y": "z"}
    assert ctx.traceparent == tp
    assert ctx.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert 0 < ctx.remaining_ms() <= 2000


def test_remaining_ms_never_negative() -> None:
    ctx = make_context(
        request_id="r",
        function="f",
        deadline=time.time() - 5,
        method="GET",
        path="/",
        query_string="",
        headers=[],
    )
    assert ctx.remaining_ms() == 0


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", True),
        ("00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01", True),
        ("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", False),
        ("00-xyz-00f067aa0ba902b7-01", False),
        ("", False),
    ],
)
def test_traceparent_validation(value: str, ok: bool) -> None:
    assert (valid_traceparent(value) is not None) is ok


@pytest.mark.parametrize("spec", ["main", "main:", ":handle", "main:not-ident", "ma-in:handle"])
def test_bad_targets(spec: str) -> None:
    with pytest.raises(LoadError) as exc:
        parse_target(spec)
    assert exc.value.fault is LoadFault.INVALID_TARGET


def test_parse_target() -> None:
    t = parse_target("pkg.mod:handle")
    assert (t.module, t.function) == ("pkg.mod", "handle")


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_load_from_source_file(tmp_path: Path) -> None:
    src = write(tmp_path, "fn_ok_unit.py", "def handle(event, context):\n    return event\n")
    fn = load_target("fn_ok_unit:handle", src)
    assert fn(3, None) == 3
    assert not is_async_handler(fn)


def test_async_handler_is_detected(tmp_path: Path) -> None:
    src = write(tmp_path, "fn_async_unit.py", "async def handle(event, context):\n    return 1\n")
    assert is_async_handler(load_target("fn_async_unit:handle", src))


def test_missing_function_lists_what_was_found(tmp_path: Path) -> None:
    src = write(
        tmp_path,
        "fn_missing_unit.py",
        "import os\nX = 1\ndef main(e, c): pass\ndef other(e, c): pass\n",
    )
    with pytest.raises(LoadError) as exc:
        load_target("fn_missing_unit:handle", src)
    assert exc.value.fault is LoadFault.HANDLER_NOT_FOUND
    assert "named 'handle'" in exc.value.message
    assert "Found: main, other" in exc.value.message


def test_not_callable_is_not_a_handler(tmp_path: Path) -> None:
    src = write(tmp_path, "fn_notcallable_unit.py", "handle = 3\n")
    with pytest.raises(LoadError) as exc:
        load_target("fn_notcallable_unit:handle", src)
    assert exc.value.fault is LoadFault.HANDLER_NOT_FOUND


def test_module_name_must_match_source(tmp_path: Path) -> None:
    src = write(tmp_path, "fn_name_unit.py", "def handle(e, c): pass\n")
    with pytest.raises(LoadError) as exc:
        load_target("other:handle", src)
    assert exc.value.fault is LoadFault.INVALID_TARGET
    assert "fn_name_unit:handle" in exc.value.message


def test_import_error_in_user_code(tmp_path: Path) -> None:
    src = write(tmp_path, "fn_raises_unit.py", "raise RuntimeError('at import')\n")
    with pytest.raises(LoadError) as exc:
        load_target("fn_raises_unit:handle", src)
    assert exc.value.fault is LoadFault.IMPORT_ERROR
    assert "RuntimeError: at import" in exc.value.message


def test_syntax_error(tmp_path: Path) -> None:
    src = write(tmp_path, "fn_syntax_unit.py", "def handle(:\n")
    with pytest.raises(LoadError) as exc:
        load_target("fn_syntax_unit:handle", src)
    assert exc.value.fault is LoadFault.SYNTAX_ERROR
    assert "line 1" in exc.value.message


def test_missing_source_lists_the_directory(tmp_path: Path) -> None:
    write(tmp_path, "present.py", "")
    with pytest.raises(LoadError) as exc:
        load_target("main:handle", str(tmp_path / "main.py"))
    assert exc.value.fault is LoadFault.SOURCE_NOT_FOUND
    assert "present.py" in exc.value.message


def test_module_not_on_path() -> None:
    with pytest.raises(LoadError) as exc:
        load_target("no_such_module_for_ember_unit:handle")
    assert exc.value.fault is LoadFault.MODULE_NOT_FOUND


def test_user_traceback_strips_runtime_frames(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    from ember_runtime.invoke import invoke_sync

    src = write(tmp_path, "fn_tb_unit.py", "def handle(e, c):\n    raise KeyError('k')\n")
    fn = load_target("fn_tb_unit:handle", src)
    status, code, _head, _body = invoke_sync(fn, "f", ("r", "GET", b"/", b"", [], b"", 0.0))
    assert (status, code) == (500, "Runtime.HandlerError")
    logged = json.loads(capfd.readouterr().err.strip().splitlines()[-1])
    tb = logged["traceback"]
    assert "fn_tb_unit.py" in tb and "KeyError: 'k'" in tb
    assert "ember_runtime" not in tb
    assert logged["request_id"] == "r"
    assert user_traceback(KeyError("x")).endswith("KeyError: 'x'\n")


def test_dict_fast_path_matches_the_general_path() -> None:
    from ember_runtime.contract import InvalidResult

    class D(dict):  # type: ignore[type-arg]
        pass

    assert encode_result({"a": [1, "\u00e9"]}) == encode_result(D({"a": [1, "\u00e9"]}))
    with pytest.raises(InvalidResult, match="not JSON-serialisable"):
        encode_result({"a": {1, 2}})
