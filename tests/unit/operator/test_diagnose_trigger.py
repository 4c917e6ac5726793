"""A Trigger is Ready only when something serves its kind, and an HTTP
Trigger only while it owns its path."""

from __future__ import annotations

import pytest

from ember_operator import status as st
from ember_operator.diagnose.http_paths import HttpClaim, PathIndex
from ember_operator.diagnose.trigger import (
    served_kinds,
    trigger_conditions,
    trigger_kind,
    trigger_url,
)

pytestmark = pytest.mark.unit

HTTP = frozenset({"http"})


def test_a_gateway_serves_http_and_nothing_serves_the_rest_yet() -> None:
    assert served_kinds(None) == frozenset() == served_kinds("")
    assert served_kinds("http://gw") == HTTP


@pytest.mark.parametrize("kind", ["http", "schedule", "queue"])
def test_an_unserved_kind_is_not_ready_even_with_its_function(kind: str) -> None:
    (ready,) = trigger_conditions(kind, "fn", "ns", function_found=True, now="T")
    assert (ready["status"], ready["reason"]) == ("False", st.REASON_KIND_NOT_SERVED)
    assert f"{kind} Triggers" in ready["message"]


def test_a_missing_function_comes_first_and_a_served_kind_is_ready() -> None:
    (missing,) = trigger_conditions(
        "http", "fn", "ns", function_found=False, served=HTTP, path_conflict="lost", now="T"
    )
    assert missing["reason"] == st.REASON_FUNCTION_NOT_FOUND
    assert missing["message"] == "Function 'fn' does not exist in namespace ns"
    (served,) = trigger_conditions("queue", "fn", "ns", True, served=frozenset({"queue"}), now="T")
    assert (served["status"], served["reason"]) == ("True", st.REASON_SERVED)


def test_a_routed_http_trigger_is_ready_and_names_its_path() -> None:
    (ready,) = trigger_conditions("http", "fn", "ns", True, served=HTTP, path="/api/", now="T")
    assert (ready["status"], ready["reason"]) == ("True", st.REASON_ROUTED)
    assert ready["message"] == "the gateway routes /api to Function 'fn'"


def test_a_lost_path_is_a_conflict_only_where_a_gateway_routes() -> None:
    (lost,) = trigger_conditions(
        "http", "fn", "ns", True, served=HTTP, path="/a", path_conflict="taken", now="T"
    )
    assert (lost["status"], lost["reason"], lost["message"]) == (
        "False",
        st.REASON_PATH_CONFLICT,
        "taken",
    )
    (unserved,) = trigger_conditions("http", "fn", "ns", True, path="/a", path_conflict="taken")
    assert unserved["reason"] == st.REASON_KIND_NOT_SERVED


def test_the_url_is_the_gateway_and_the_normalized_path() -> None:
    assert trigger_url("http://gw:80", "/api/") == "http://gw:80/api"
    assert trigger_url("http://gw/", "/") == "http://gw/"
    assert trigger_url(None, "/api") is None
    assert trigger_url("http://gw", None) is None


def test_the_kind_is_the_one_set() -> None:
    assert trigger_kind({"function": "f", "queue": {"stream": "s"}}) == "queue"
    with pytest.raises(ValueError):
        trigger_kind({"function": "f"})


def claim(name: str, path: str, created: str, ns: str = "ns") -> HttpClaim:
    return HttpClaim(ns, name, path, created)


def test_the_index_says_whose_outcome_a_change_moved() -> None:
    index = PathIndex()
    assert index.set(("ns", "old"), claim("old", "/a", "2024-01-01T00:00:00Z")) == set()
    # A newer claim on the same path loses; nothing else moved.
    assert index.set(("ns", "new"), claim("new", "/a/", "2024-01-02T00:00:00Z")) == set()
    assert index.conflict(("ns", "old")) is None
    assert index.conflict(("ns", "new")) == (
        "path '/a' is already served by Trigger ns/old (the older claim wins)"
    )
    # A third on the path: it loses, the second's outcome is unchanged.
    assert index.set(("ns", "third"), claim("third", "/a", "2024-01-03T00:00:00Z")) == set()
    # The winner moves away: both losers' outcomes move (one wins, one loses to it).
    moved = index.set(("ns", "old"), claim("old", "/b", "2024-01-01T00:00:00Z"))
    assert moved == {("ns", "new"), ("ns", "third")}
    assert index.conflict(("ns", "new")) is None
    assert "ns/new" in (index.conflict(("ns", "third")) or "")
    # Deleted: the next in line wins.
    assert index.set(("ns", "new"), None) == {("ns", "third")}
    assert index.conflict(("ns", "third")) is None
    # Setting the same claim again, or dropping an unknown one, moves nothing.
    assert index.set(("ns", "third"), claim("third", "/a", "2024-01-03T00:00:00Z")) == set()
    assert index.set(("ns", "never"), None) == set()


def test_paths_are_global_and_fn_is_reserved() -> None:
    index = PathIndex()
    index.set(("a", "t"), claim("t", "/x", "2024-01-01T00:00:00Z", ns="a"))
    index.set(("b", "t"), claim("t", "/x", "2024-01-02T00:00:00Z", ns="b"))
    assert "a/t" in (index.conflict(("b", "t")) or "")
    index.set(("a", "fn"), claim("fn", "/fn/x", "2024-01-01T00:00:00Z", ns="a"))
    assert "reserved" in (index.conflict(("a", "fn")) or "")
