"""Inline source checked with ``ast`` before any pod starts."""

from __future__ import annotations

import pytest

from ember_operator import status as st
from ember_operator.diagnose.source import check_source

pytestmark = pytest.mark.unit


def test_a_syntax_error_names_the_line_and_is_not_retried() -> None:
    err = check_source("import json\n\ndef handle(event, context)\n    return 1\n", "main:handle")
    assert err is not None and err.reason == st.REASON_SOURCE_SYNTAX_ERROR and not err.retry
    assert err.message.startswith("main.py, line 3")
    assert "def handle(event, context)" in err.message


def test_a_missing_handler_lists_the_functions_found() -> None:
    source = "def handle(e, c):\n    return e\n\ndef _private():\n    pass\n\nclass K: pass\n"
    err = check_source(source, "main:handler")
    assert err is not None and err.reason == st.REASON_HANDLER_NOT_FOUND
    assert err.message == "main.py defines no top-level 'handler'. Found: handle"
    assert check_source("X = 1\n", "main:handle").message.endswith("Found: no functions")  # type: ignore[union-attr]


def test_a_nested_definition_is_not_a_top_level_one() -> None:
    source = "def outer():\n    def handle(e, c):\n        return e\n    return handle\n"
    err = check_source(source, "main:handle")
    assert err is not None and "Found: outer" in err.message


@pytest.mark.parametrize(
    "source",
    [
        "def handle(e, c):\n    return e\n",
        "async def handle(e, c):\n    return e\n",
        "class handle:\n    def __init__(self, e, c): pass\n",
        "from json import dumps as handle\n",
        "handle = lambda e, c: e\n",
        "a, handle = 1, print\n",
        "try:\n    import ujson as j\nexcept ImportError:\n    import json as j\n"
        "handle = j.dumps\n",
        "if True:\n    def handle(e, c):\n        return e\n",
        "from helpers import *\n",  # cannot know: the runtime will say
        "globals()['handle'] = print\n",
        "globals().update(handle=print)\n",
    ],
)
def test_any_top_level_binding_or_one_that_cannot_be_seen_passes(source: str) -> None:
    assert check_source(source, "main:handle") is None


def test_inline_source_is_module_main() -> None:
    err = check_source("def handle(e, c):\n    return e\n", "app:handle")
    assert err is not None and err.reason == st.REASON_HANDLER_NOT_FOUND
    assert "use 'main:handle'" in err.message


def test_null_bytes_are_a_syntax_error() -> None:
    err = check_source("def handle(e, c):\n    return '\0'\x00\n", "main:handle")
    assert err is not None and err.reason == st.REASON_SOURCE_SYNTAX_ERROR
