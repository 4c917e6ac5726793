"""The public contract: the context a handler gets, traces, error bodies."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from ember_runtime.contract import valid_traceparent
from ember_runtime.invoke import prepare
from ember_runtime.loader import load_target
from ember_runtime.tracebacks import user_traceback

pytestmark = pytest.mark.unit


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
    headers = [(b"TraceParent", tp.encode()), (b"X-Y", b"z")]
    req = ("r1", "GET", b"/p", b"a=1&b=2&a=3", headers, b"", time.time() + 2)
    _event, ctx = prepare("ns/fn", req)
    assert ctx.query == {"a": "3", "b": "2"}
    assert ctx.headers == {"traceparent": tp, "x-y": "z"}
    assert ctx.traceparent == tp
    assert ctx.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert 0 < ctx.remaining_ms() <= 2000


def test_remaining_ms_never_negative() -> None:
    _event, ctx = prepare("f", ("r", "GET", b"/", b"", [], b"", time.time() - 5))
    assert ctx.remaining_ms() == 0


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", True),
        (" 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 ", True),
        # Trace Context ids are lowercase hex, never all zeros.
        ("00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01", False),
        ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", False),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", False),
        ("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", False),
        ("00-xyz-00f067aa0ba902b7-01", False),
        ("", False),
    ],
)
def test_traceparent_validation(value: str, ok: bool) -> None:
    assert (valid_traceparent(value) is not None) is ok


def test_user_traceback_strips_runtime_frames(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    from ember_runtime.invoke import invoke_sync

    src = tmp_path / "fn_tb_unit.py"
    src.write_text("def handle(e, c):\n    raise KeyError('k')\n")
    fn = load_target("fn_tb_unit:handle", str(src))
    status, code, _head, _body = invoke_sync(fn, "f", ("r", "GET", b"/", b"", [], b"", 0.0))
    assert (status, code) == (500, "Runtime.HandlerError")
    logged = json.loads(capfd.readouterr().err.strip().splitlines()[-1])
    tb = logged["traceback"]
    assert "fn_tb_unit.py" in tb and "KeyError: 'k'" in tb
    assert "ember_runtime" not in tb
    assert logged["request_id"] == "r"
    assert user_traceback(KeyError("x")).endswith("KeyError: 'x'\n")
