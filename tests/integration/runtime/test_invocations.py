"""The function contract over real HTTP: return types, context, errors,
crashes and hangs, all against one runtime process."""

from __future__ import annotations

import socket

import httpx
import pytest

from tests.integration.runtime.runtime_harness import Runtime

pytestmark = pytest.mark.integration


def test_dict_becomes_json(app_runtime: Runtime) -> None:
    r = httpx.get(app_runtime.url + "/json")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {"ok": True, "n": [1, 2]}
    assert r.headers["x-request-id"]


def test_list_becomes_json(app_runtime: Runtime) -> None:
    r = httpx.get(app_runtime.url + "/list")
    assert (r.status_code, r.json()) == (200, [1, "two", None])


def test_str_becomes_text(app_runtime: Runtime) -> None:
    r = httpx.get(app_runtime.url + "/text")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    assert r.text == "héllo"


def test_bytes_become_octet_stream(app_runtime: Runtime) -> None:
    r = httpx.get(app_runtime.url + "/bytes")
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.content == b"\x00\x01\xff"


def test_none_is_204(app_runtime: Runtime) -> None:
    r = httpx.get(app_runtime.url + "/none")
    assert (r.status_code, r.content) == (204, b"")


def test_response_gives_full_control(app_runtime: Runtime) -> None:
    r = httpx.get(app_runtime.url + "/response")
    assert r.status_code == 201
    assert r.headers["x-extra"] == "yes"
    assert r.json() == {"created": 1}
    r = httpx.get(app_runtime.url + "/response-text")
    assert (r.status_code, r.headers["content-type"], r.text) == (418, "text/x-tea", "teapot")


@pytest.mark.parametrize(
    ("content_type", "body", "event", "event_type"),
    [
        ("application/json", b'{"a": [1]}', {"a": [1]}, "dict"),
        ("application/cloudevents+json", b"[1, 2]", [1, 2], "list"),
        ("text/plain; charset=utf-8", "grüß".encode(), "grüß", "str"),
        ("application/octet-stream", b"\x00\xfe", "00fe", "bytes"),
        (None, b"raw", "726177", "bytes"),
        ("application/json", b"", None, "NoneType"),
    ],
)
def test_event_is_the_decoded_body(
    app_runtime: Runtime, content_type: str | None, body: bytes, event: object, event_type: str
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    r = httpx.post(app_runtime.url + "/echo", content=body, headers=headers)
    assert r.status_code == 200
    assert r.json()["event"] == event
    assert r.json()["event_type"] == event_type


def test_context_carries_the_call(app_runtime: Runtime) -> None:
    tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    r = httpx.put(
        app_runtime.url + "/echo?x=1&y=two&x=3",
        headers={"traceparent": tp, "x-request-id": "req-123", "X-Custom": "Val"},
        content=b"",
    )
    got = r.json()
    assert got["method"] == "PUT"
    assert got["path"] == "/echo"
    assert got["query"] == {"x": "3", "y": "two"}
    assert got["headers"]["x-custom"] == "Val"
    assert got["traceparent"] == tp
    assert got["request_id"] == "req-123" == r.headers["x-request-id"]
    assert got["function"] == "test/app"
    assert 0 < got["remaining_ms"] <= 2000


def test_invalid_traceparent_is_dropped(app_runtime: Runtime) -> None:
    r = httpx.get(app_runtime.url + "/echo", headers={"traceparent": "nonsense"})
    assert r.json()["traceparent"] is None


def test_handler_logs_are_json_with_request_and_trace_id(app_runtime: Runtime) -> None:
    tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    r = httpx.get(app_runtime.url + "/log", headers={"traceparent": tp})
    assert r.text == "logged"
    rid = r.headers["x-request-id"]
    lines = [entry for entry in app_runtime.logs() if entry.get("request_id") == rid]
    assert lines, app_runtime.log_path.read_text()
    assert lines[0]["msg"] == "hello from the handler"
    assert lines[0]["answer"] == 42
    assert lines[0]["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert lines[0]["level"] == "info"


def test_exception_is_500_with_stable_code_and_clean_traceback(app_runtime: Runtime) -> None:
    r = httpx.get(app_runtime.url + "/raise")
    assert r.status_code == 500
    body = r.json()
    assert body["error"] == "Runtime.HandlerError"
    assert body["message"] == "ValueError: boom"
    assert body["request_id"] == r.headers["x-request-id"]
    logged = [e for e in app_runtime.logs() if e.get("request_id") == body["request_id"]]
    tb = logged[0]["traceback"]
    assert "app.py" in tb and "ValueError: boom" in tb
    assert "ember_runtime" not in tb


def test_unencodable_return_is_500(app_runtime: Runtime) -> None:
    r = httpx.get(app_runtime.url + "/bad-return")
    assert r.status_code == 500
    assert r.json()["error"] == "Runtime.InvalidResponse"


@pytest.mark.parametrize("path", ["/exit", "/segv"])
def test_worker_crash_is_500_and_the_pod_keeps_serving(app_runtime: Runtime, path: str) -> None:
    before = app_runtime.stats()["worker_restarts"]
    r = httpx.get(app_runtime.url + path, timeout=30)
    assert r.status_code == 500
    assert r.json()["error"] == "Runtime.WorkerCrashed"
    assert httpx.get(app_runtime.url + "/json").status_code == 200
    stats = app_runtime.wait_until(lambda s: s["workers"] == 3)
    assert stats["worker_restarts"] == before + 1


def test_hang_is_504_and_the_worker_is_replaced(app_runtime: Runtime) -> None:
    before = app_runtime.stats()["worker_restarts"]
    r = httpx.get(app_runtime.url + "/sleep?s=60", timeout=30)
    assert r.status_code == 504
    assert r.json()["error"] == "Runtime.Timeout"
    assert httpx.get(app_runtime.url + "/json").json() == {"ok": True, "n": [1, 2]}
    stats = app_runtime.wait_until(lambda s: s["workers"] == 3)
    assert stats["worker_restarts"] == before + 1


def test_malformed_json_is_400(app_runtime: Runtime) -> None:
    r = httpx.post(
        app_runtime.url + "/echo", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert r.status_code == 400
    assert r.json()["error"] == "Runtime.MalformedJSON"


def test_oversized_body_is_413(app_runtime: Runtime) -> None:
    r = httpx.post(app_runtime.url + "/echo", content=b"x" * 5000)
    assert r.status_code == 413
    assert r.json()["error"] == "Runtime.PayloadTooLarge"
    # exactly at the limit is fine
    assert httpx.post(app_runtime.url + "/echo", content=b"x" * 4096).status_code == 200


def test_oversized_chunked_body_is_413(app_runtime: Runtime) -> None:
    def chunks():  # type: ignore[no-untyped-def]
        for _ in range(10):
            yield b"y" * 1000

    r = httpx.post(app_runtime.url + "/echo", content=chunks())
    assert r.status_code == 413


def test_oversized_headers_are_431(app_runtime: Runtime) -> None:
    r = httpx.get(app_runtime.url + "/json", headers={"x-big": "a" * 3000})
    assert r.status_code == 431
    assert r.json()["error"] == "Runtime.HeadersTooLarge"


def test_malformed_http_request_is_400(app_runtime: Runtime) -> None:
    with socket.create_connection(("127.0.0.1", app_runtime.port), timeout=10) as s:
        s.sendall(b"NOT AN HTTP REQUEST\r\n\r\n")
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    assert data.startswith(b"HTTP/1.1 400 ")
    assert b"Runtime.BadRequest" in data


def test_keep_alive_and_pipelining(app_runtime: Runtime) -> None:
    with socket.create_connection(("127.0.0.1", app_runtime.port), timeout=10) as s:
        req = b"GET /json HTTP/1.1\r\nhost: x\r\n\r\nGET /text HTTP/1.1\r\nhost: x\r\n\r\n"
        s.sendall(req)
        data = b""
        while data.count(b"HTTP/1.1 200") < 2 or not data.endswith("héllo".encode()):
            chunk = s.recv(4096)
            assert chunk, data
            data += chunk
    first, second = data.index(b'{"ok"'), data.index("héllo".encode())
    assert first < second


def test_health_ready_stats_and_metrics(app_runtime: Runtime) -> None:
    assert httpx.get(app_runtime.url + "/_/health").status_code == 200
    assert httpx.get(app_runtime.url + "/_/ready").json() == {"status": "ready"}
    httpx.get(app_runtime.url + "/raise")
    stats = app_runtime.stats()
    assert stats["inflight"] == 0 and stats["queued"] == 0
    assert stats["requests_total"] >= 2 and stats["concurrency"] == 2
    text = httpx.get(app_runtime.url + "/metrics").text
    assert "# TYPE ember_invocations_total counter" in text
    assert 'ember_invocations_total{function="test/app",code="200"}' in text
    assert 'ember_invocation_errors_total{function="test/app",error="Runtime.HandlerError"}' in text
    assert 'ember_invocation_duration_seconds_bucket{function="test/app",le="+Inf"}' in text
    assert "ember_inflight_invocations" in text and "ember_queued_invocations" in text
    assert "ember_worker_restarts_total" in text
    assert "ember_cold_start_seconds" in text
    assert httpx.get(app_runtime.url + "/_/nope").status_code == 404


def test_every_other_path_invokes(app_runtime: Runtime) -> None:
    r = httpx.delete(app_runtime.url + "/some/deep/path")
    assert r.json() == {"path": "/some/deep/path"}
