"""context.logger speaks both ways: structured fields and stdlib-style %-args."""

from __future__ import annotations

import json

import pytest

from ember_runtime.logs import FunctionLogger

pytestmark = pytest.mark.unit


def _lines(capfd: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    return [json.loads(line) for line in capfd.readouterr().err.splitlines()]


def test_percent_args_format_the_message(capfd: pytest.CaptureFixture[str]) -> None:
    FunctionLogger(request_id="r1").info("greeting %s from %d", "Ada", 3, extra="x")
    (line,) = _lines(capfd)
    assert line["msg"] == "greeting Ada from 3"
    assert line["request_id"] == "r1" and line["extra"] == "x" and line["level"] == "info"


def test_mismatched_args_never_raise(capfd: pytest.CaptureFixture[str]) -> None:
    FunctionLogger().warning("no placeholder", 42)
    (line,) = _lines(capfd)
    assert line["msg"] == "no placeholder (42,)"


def test_exception_logs_the_traceback(capfd: pytest.CaptureFixture[str]) -> None:
    try:
        raise KeyError("missing")
    except KeyError:
        FunctionLogger(request_id="r2").exception("lookup failed for %s", "k")
    (line,) = _lines(capfd)
    assert line["level"] == "error" and line["msg"] == "lookup failed for k"
    assert line["exception"] == "KeyError" and "KeyError: 'missing'" in str(line["traceback"])
    assert line["request_id"] == "r2"
