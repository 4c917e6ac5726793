"""Signed invocations against a real runtime process on loopback: with a
key, only fresh calls signed for this function run; probes stay open; with
no key, nothing changes."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ember_runtime.signing import SIGNATURE_HEADER, function_key, pod_address, sign
from tests.integration.runtime.runtime_harness import Runtime, start_runtime

pytestmark = pytest.mark.integration

SECRET = b"s" * 32
KEY = function_key(SECRET, "test", "app")


@pytest.fixture(scope="module", params=["app.py", "aapp.py"], ids=["sync", "async"])
def signed_runtime(module_tmp: Path, request: pytest.FixtureRequest) -> Iterator[Runtime]:
    rt = start_runtime(module_tmp, request.param, function="test/app", signing_key=KEY.hex())
    yield rt
    rt.stop()


def signed_headers(
    rt: Runtime,
    method: str,
    target: str,
    key: bytes = KEY,
    now: float | None = None,
    host: str = "127.0.0.1",
) -> dict[str, str]:
    """Headers of a call signed for the runtime at ``host`` (its port)."""
    rid = uuid.uuid4().hex
    pod = pod_address(host, rt.port)
    return {"x-request-id": rid, SIGNATURE_HEADER: sign(key, method, target, rid, pod, now=now)}


def assert_forbidden(r: httpx.Response, says: str) -> None:
    assert r.status_code == 403, r.text
    body = r.json()
    assert body["error"] == "Runtime.Forbidden"
    assert says in body["message"]
    assert body["request_id"] == r.headers["x-request-id"]


def test_a_signed_call_runs(signed_runtime: Runtime) -> None:
    with signed_runtime.client() as c:
        r = c.post(
            "/echo?a=1", json={"x": 1}, headers=signed_headers(signed_runtime, "POST", "/echo?a=1")
        )
        assert r.status_code == 200, r.text
        assert r.json()["event"] == {"x": 1}
        h = signed_headers(signed_runtime, "GET", "/json")
        r = c.get("/json", headers=h)
        assert r.status_code == 200, r.text
        assert r.headers["x-request-id"] == h["x-request-id"]


def test_an_unsigned_call_is_403(signed_runtime: Runtime) -> None:
    r = httpx.get(signed_runtime.url + "/json", headers={"x-request-id": "plain"})
    assert_forbidden(r, "unsigned")
    assert r.json()["request_id"] == "plain"


def test_a_stale_call_is_403(signed_runtime: Runtime) -> None:
    h = signed_headers(signed_runtime, "GET", "/json", now=time.time() - 120)
    assert_forbidden(httpx.get(signed_runtime.url + "/json", headers=h), "stale")


def test_a_replay_is_403(signed_runtime: Runtime) -> None:
    h = signed_headers(signed_runtime, "GET", "/json")
    assert httpx.get(signed_runtime.url + "/json", headers=h).status_code == 200
    assert_forbidden(httpx.get(signed_runtime.url + "/json", headers=h), "replayed")


def test_tampered_and_foreign_calls_are_403(signed_runtime: Runtime) -> None:
    url = signed_runtime.url
    h = signed_headers(signed_runtime, "GET", "/json")
    assert_forbidden(httpx.post(url + "/json", headers=h), "bad signature")
    h = signed_headers(signed_runtime, "GET", "/json")
    assert_forbidden(httpx.get(url + "/json?x=1", headers=h), "bad signature")
    other = function_key(SECRET, "test", "other")  # another function's key
    h = signed_headers(signed_runtime, "GET", "/json", key=other)
    r = httpx.get(url + "/json", headers=h)
    assert_forbidden(r, "bad signature")
    assert h[SIGNATURE_HEADER].split("v2=")[1] not in r.text
    pod = pod_address("127.0.0.1", signed_runtime.port)
    assert sign(KEY, "GET", "/json", h["x-request-id"], pod).split("v2=")[1] not in r.text


def test_a_call_signed_for_another_pod_is_403(signed_runtime: Runtime) -> None:
    """Each pod keeps its own replay memory, so a signature names its pod: a
    call captured on its way to one pod cannot be replayed at another."""
    h = signed_headers(signed_runtime, "GET", "/json", host="10.9.8.7")  # another pod's
    assert_forbidden(httpx.get(signed_runtime.url + "/json", headers=h), "bad signature")


def test_probes_and_metrics_stay_unsigned(signed_runtime: Runtime) -> None:
    url = signed_runtime.url
    assert httpx.get(url + "/_/health").status_code == 200
    assert httpx.get(url + "/_/ready").status_code == 200
    assert httpx.get(url + "/_/stats").status_code == 200
    metrics = httpx.get(url + "/metrics")
    assert metrics.status_code == 200
    assert 'code="403"}' in metrics.text
    assert 'error="Runtime.Forbidden"}' in metrics.text


def test_keep_alive_survives_a_refusal(signed_runtime: Runtime) -> None:
    with signed_runtime.client() as c:
        assert c.get("/json").status_code == 403
        assert (
            c.get("/json", headers=signed_headers(signed_runtime, "GET", "/json")).status_code
            == 200
        )


def test_the_refusal_is_logged_with_its_reason(signed_runtime: Runtime) -> None:
    httpx.get(signed_runtime.url + "/json", headers={"x-request-id": "logged-403"})

    def logged() -> list[dict[str, object]]:
        return [e for e in signed_runtime.logs() if e.get("request_id") == "logged-403"]

    deadline = time.monotonic() + 5
    while not logged() and time.monotonic() < deadline:
        time.sleep(0.05)
    (entry,) = logged()
    assert "Runtime.Forbidden" in str(entry) and "unsigned" in str(entry)


def test_without_a_key_unsigned_calls_run(module_tmp: Path) -> None:
    rt = start_runtime(module_tmp, "app.py", function="test/app", signing_key="")
    try:
        r = httpx.get(rt.url + "/json")
        assert (r.status_code, r.json()) == (200, {"ok": True, "n": [1, 2]})
        # A signature is ignored, not refused, when nothing checks it.
        r = httpx.get(rt.url + "/json", headers={SIGNATURE_HEADER: "t=1,v2=00"})
        assert r.status_code == 200
    finally:
        rt.stop()


def test_a_bad_key_stops_the_runtime_without_showing_it(module_tmp: Path) -> None:
    with pytest.raises(AssertionError) as e:
        start_runtime(module_tmp, "app.py", signing_key="nothex-secret-value")
    assert "Runtime.InvalidConfig" in str(e.value)
    assert "nothex-secret-value" not in str(e.value)
