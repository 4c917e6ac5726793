"""The one conditions helper Functions and Triggers share."""

from __future__ import annotations

import re

import pytest

from ember_operator import status as st

pytestmark = pytest.mark.unit


def test_transition_time_moves_only_when_the_status_flips() -> None:
    ready = st.Condition(st.READY, True, st.REASON_AVAILABLE, "1 of 1 replicas ready")
    first = st.conditions([ready], at="T1")
    assert first == [
        {
            "type": "Ready",
            "status": "True",
            "reason": "MinimumReplicasAvailable",
            "message": "1 of 1 replicas ready",
            "lastTransitionTime": "T1",
        }
    ]
    reworded = st.Condition(st.READY, True, st.REASON_AVAILABLE, "2 of 2 replicas ready")
    assert st.conditions([reworded], first, at="T2")[0]["lastTransitionTime"] == "T1"
    flipped = st.Condition(st.READY, False, st.REASON_ROLLING_OUT, "0 of 1")
    assert st.conditions([flipped], first, at="T3")[0]["lastTransitionTime"] == "T3"


def test_same_conditions_ignores_timestamps_and_order() -> None:
    a = st.conditions(
        [st.Condition("A", True, "R", "m"), st.Condition("B", False, "R", "m")], at="T1"
    )
    b = st.conditions(
        [st.Condition("B", False, "R", "m"), st.Condition("A", True, "R", "m")], at="T2"
    )
    assert st.same_conditions(a, b)
    assert not st.same_conditions(a, st.conditions([st.Condition("A", True, "R", "x")]))


def test_now_is_an_rfc3339_utc_second() -> None:
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", st.now())


def test_reasons_are_unique_camel_case_constants() -> None:
    reasons = {k: v for k, v in vars(st).items() if k.startswith("REASON_")}
    assert len(set(reasons.values())) == len(reasons)
    assert all(re.fullmatch(r"[A-Z][A-Za-z]+", v) and len(v) <= 64 for v in reasons.values())
