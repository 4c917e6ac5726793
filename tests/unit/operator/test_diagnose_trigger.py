"""A Trigger is Ready only when something serves its kind."""

from __future__ import annotations

import pytest

from ember_operator import status as st
from ember_operator.diagnose.trigger import SERVED_KINDS, trigger_conditions, trigger_kind

pytestmark = pytest.mark.unit


def test_no_kind_is_served_yet() -> None:
    assert frozenset() == SERVED_KINDS


@pytest.mark.parametrize("kind", ["http", "schedule", "queue"])
def test_an_unserved_kind_is_not_ready_even_with_its_function(kind: str) -> None:
    (ready,) = trigger_conditions(kind, "fn", "ns", function_found=True, now="T")
    assert (ready["status"], ready["reason"]) == ("False", st.REASON_KIND_NOT_SERVED)
    assert f"{kind} Triggers" in ready["message"]


def test_a_missing_function_comes_first_and_a_served_kind_is_ready() -> None:
    (missing,) = trigger_conditions("http", "fn", "ns", function_found=False, now="T")
    assert missing["reason"] == st.REASON_FUNCTION_NOT_FOUND
    assert missing["message"] == "Function 'fn' does not exist in namespace ns"
    (served,) = trigger_conditions(
        "http", "fn", "ns", function_found=True, served=frozenset({"http"}), now="T"
    )
    assert (served["status"], served["reason"]) == ("True", st.REASON_SERVED)


def test_the_kind_is_the_one_set() -> None:
    assert trigger_kind({"function": "f", "queue": {"stream": "s"}}) == "queue"
    with pytest.raises(ValueError):
        trigger_kind({"function": "f"})
