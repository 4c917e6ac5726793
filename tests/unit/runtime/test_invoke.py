"""One invocation, from request tuple to reply."""

from __future__ import annotations

import pytest

from ember_runtime.invoke import invoke_sync

pytestmark = pytest.mark.unit


def test_invoke_sync_maps_errors() -> None:
    def boom(event: object, ctx: object) -> object:
        raise ValueError("no")

    req = ("rid", "POST", b"/", b"", [(b"content-type", b"application/json")], b"{}", 0.0)
    status, code, head, body = invoke_sync(boom, "f", req)
    assert (status, code) == (500, "Runtime.HandlerError")
    assert b"x-request-id: rid" in head and b'"message":"ValueError: no"' in body
    bad = ("rid", "POST", b"/", b"", [(b"content-type", b"application/json")], b"{", 0.0)
    assert invoke_sync(boom, "f", bad)[:2] == (400, "Runtime.MalformedJSON")
