"""The models parse what the API server stores and fill in defaults."""

from __future__ import annotations

import pytest

from ember_operator.api.v1alpha1 import FunctionSpec, TriggerSpec

pytestmark = pytest.mark.unit


def test_function_defaults_and_camel_case() -> None:
    spec = FunctionSpec.model_validate(
        {"handler": "main:handle", "source": "x", "timeoutSeconds": 5, "unknown": 1}
    )
    assert spec.timeout_seconds == 5
    assert spec.scale.min == 0 and spec.scale.max == 10
    assert spec.env == [] and spec.resources is None
    assert spec.runtime == "python3.11"


def test_env_var_round_trips_in_wire_form() -> None:
    spec = FunctionSpec.model_validate(
        {
            "handler": "m:f",
            "image": "i:1",
            "env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
        }
    )
    assert spec.env[0].to_k8s() == {
        "name": "A",
        "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}},
    }


def test_trigger_http_defaults_methods() -> None:
    spec = TriggerSpec.model_validate({"function": "hello", "http": {"path": "/x"}})
    assert spec.http is not None and list(spec.http.methods) == ["GET", "POST"]
    assert spec.schedule is None and spec.queue is None


def test_schedule_and_queue_defaults() -> None:
    spec = TriggerSpec.model_validate({"function": "f", "schedule": {"cron": "* * * * * *"}})
    assert spec.schedule is not None
    assert (spec.schedule.timezone, spec.schedule.missed_runs) == ("UTC", "Skip")
    spec = TriggerSpec.model_validate(
        {"function": "f", "schedule": {"cron": "0 9 * * *", "missedRuns": "RunOnce"}}
    )
    assert spec.schedule is not None and spec.schedule.missed_runs == "RunOnce"
    queue = TriggerSpec.model_validate({"function": "f", "queue": {"stream": "s"}}).queue
    assert queue is not None and queue.concurrency == 10
