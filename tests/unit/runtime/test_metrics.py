"""Prometheus text and the stats the autoscaler reads."""

from __future__ import annotations

import pytest

from ember_runtime.metrics import Metrics

pytestmark = pytest.mark.unit


def test_prometheus_text() -> None:
    sig = Metrics("ns/fn", started_at=0.0)
    sig.first_call()
    sig.observe(200, "", 0.003)
    sig.observe(500, "Runtime.HandlerError", 0.2)
    text = sig.prometheus(inflight=2, queued=1, restarts=3).decode()
    assert 'ember_invocations_total{function="ns/fn",code="200"} 1' in text
    assert 'ember_invocation_errors_total{function="ns/fn",error="Runtime.HandlerError"} 1' in text
    assert 'ember_invocation_duration_seconds_bucket{function="ns/fn",le="0.005"} 1' in text
    assert 'ember_invocation_duration_seconds_bucket{function="ns/fn",le="+Inf"} 2' in text
    assert 'ember_invocation_duration_seconds_count{function="ns/fn"} 2' in text
    assert 'ember_inflight_invocations{function="ns/fn"} 2' in text
    assert 'ember_queued_invocations{function="ns/fn"} 1' in text
    assert 'ember_worker_restarts_total{function="ns/fn"} 3' in text
    assert "ember_cold_start_seconds" in text
    for line in text.splitlines():
        assert line.startswith("#") or line.rsplit(" ", 1)[1].replace(".", "").isdigit()


def test_metrics_off_keeps_only_the_request_count() -> None:
    sig = Metrics("f", enabled=False, started_at=0.0)
    sig.observe(500, "Runtime.HandlerError", 0.1)
    assert sig.requests_total == 1 and sig.errors == {} and sum(sig.bucket_counts) == 0
