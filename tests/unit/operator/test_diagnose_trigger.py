"""A Trigger is Ready only when something serves its kind, and an HTTP
Trigger only while it owns its path."""

from __future__ import annotations

import pytest

from ember_operator import status as st
from ember_operator.diagnose.http_paths import HttpClaim, PathIndex
from ember_operator.diagnose.trigger import (
    served_kinds,
    spec_problem,
    trigger_conditions,
    trigger_kind,
    trigger_url,
)

pytestmark = pytest.mark.unit

HTTP = frozenset({"http"})


def test_a_gateway_serves_http_and_a_dispatcher_the_rest() -> None:
    assert served_kinds(None) == frozenset() == served_kinds("")
    assert served_kinds("http://gw") == HTTP
    assert served_kinds(None, dispatcher_enabled=True) == {"schedule", "queue"}
    assert served_kinds("http://gw", True) == {"http", "schedule", "queue"}


@pytest.mark.parametrize("kind", ["http", "schedule", "queue"])
def test_an_unserved_kind_is_not_ready_even_with_its_function(kind: str) -> None:
    (ready,) = trigger_conditions(kind, "fn", "ns", function_found=True, now="T")
    assert (ready["status"], ready["reason"]) == ("False", st.REASON_KIND_NOT_SERVED)
    assert f"{kind} Triggers" in ready["message"]
    setting = "EMBER_GATEWAY_URL" if kind == "http" else "EMBER_DISPATCHER_ENABLED"
    assert setting in ready["message"]


def test_a_missing_function_comes_first_and_a_served_kind_is_ready() -> None:
    (missing,) = trigger_conditions(
        "http", "fn", "ns", function_found=False, served=HTTP, path_conflict="lost", now="T"
    )
    assert missing["reason"] == st.REASON_FUNCTION_NOT_FOUND
    assert missing["message"] == "Function 'fn' does not exist in namespace ns"
    (served,) = trigger_conditions("queue", "fn", "ns", True, served=frozenset({"queue"}), now="T")
    assert (served["status"], served["reason"]) == ("True", st.REASON_CONSUMING)
    (served,) = trigger_conditions("schedule", "fn", "ns", True, served=served_kinds(None, True))
    assert (served["status"], served["reason"]) == ("True", st.REASON_SCHEDULED)


def test_a_schedule_the_scheduler_cannot_read_comes_first_and_names_the_field() -> None:
    assert spec_problem({"function": "f", "schedule": {"cron": "*/5 * * * *"}}) is None
    assert spec_problem({"function": "f", "http": {"path": "/"}}) is None
    bad_cron = spec_problem({"function": "f", "schedule": {"cron": "0 25 * * *"}})
    assert bad_cron == "spec.schedule.cron: Bad hour in '0 25 * * *'"
    bad_zone = spec_problem({"schedule": {"cron": "* * * * *", "timezone": "Europe/Nowhere"}})
    assert bad_zone is not None and bad_zone.startswith("spec.schedule.timezone: unknown")
    (ready,) = trigger_conditions(
        "schedule", "fn", "ns", False, served=served_kinds(None, True), problem=bad_cron, now="T"
    )
    assert (ready["status"], ready["reason"]) == ("False", st.REASON_INVALID_SCHEDULE)
    assert ready["message"] == bad_cron


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


def test_a_seeded_index_judges_every_claim_at_once() -> None:
    index = PathIndex()
    index.seed(
        [
            claim("new", "/a", "2024-01-02T00:00:00Z"),
            claim("old", "/a/", "2024-01-01T00:00:00Z"),
        ]
    )
    assert index.conflict(("ns", "old")) is None
    assert "ns/old" in (index.conflict(("ns", "new")) or "")
    # The handlers then claim what is seeded: nothing moves.
    assert index.set(("ns", "new"), claim("new", "/a", "2024-01-02T00:00:00Z")) == set()


def test_paths_are_global_and_fn_is_reserved() -> None:
    index = PathIndex()
    index.set(("a", "t"), claim("t", "/x", "2024-01-01T00:00:00Z", ns="a"))
    index.set(("b", "t"), claim("t", "/x", "2024-01-02T00:00:00Z", ns="b"))
    assert "a/t" in (index.conflict(("b", "t")) or "")
    index.set(("a", "fn"), claim("fn", "/fn/x", "2024-01-01T00:00:00Z", ns="a"))
    assert "reserved" in (index.conflict(("a", "fn")) or "")
