"""The autoscaler's decisions as Prometheus text, from a real tick."""

from __future__ import annotations

import pytest

from ember_operator.autoscaler.exporter import render_metrics
from tests.unit.operator.test_autoscaler_loop import World

pytestmark = pytest.mark.unit


async def test_a_tick_s_decision_reaches_the_metrics() -> None:
    w = World(min=0, max=10, target=5)
    await w.setup(replicas=1)
    await w.ticks(1, inflight=45, total=1)
    text = render_metrics(w.autoscaler)
    labels = 'namespace="team",function="hello"'
    assert f"ember_autoscaler_desired_replicas{{{labels}}} 9" in text
    assert f"ember_autoscaler_observed_concurrency{{{labels}}} 45" in text
    assert f"ember_autoscaler_panic{{{labels}}} 1" in text
    assert "ember_autoscaler_ticks_total 1" in text
    assert "ember_autoscaler_scale_writes_total 1" in text
    for line in text.splitlines():
        assert line.startswith("# ") or " " in line
