"""The routing table: /fn routes, Trigger paths and their sub-paths, methods,
and which of two Triggers on one path wins (the older)."""

from __future__ import annotations

import pytest

from ember_operator.diagnose.http_paths import HttpClaim, conflict_message, path_owners
from ember_operator.gateway.routes import RouteTable, trigger_route

pytestmark = pytest.mark.unit


def table() -> RouteTable:
    t = RouteTable()
    t.set_function(("default", "hello"))
    t.set_function(("team", "api"))
    return t


@pytest.mark.parametrize(
    ("path", "fn_path"),
    [
        (b"/fn/default/hello", b"/"),
        (b"/fn/default/hello/", b"/"),
        (b"/fn/default/hello/a/b", b"/a/b"),
    ],
)
def test_function_routes_strip_their_prefix(path: bytes, fn_path: bytes) -> None:
    assert table().lookup(path) == (("default", "hello"), fn_path, None)


@pytest.mark.parametrize(
    "path", [b"/fn/default/nope", b"/fn/default", b"/fn/", b"/fn", b"/other", b"/"]
)
def test_unknown_paths_have_no_route(path: bytes) -> None:
    assert table().lookup(path) is None


def test_a_trigger_matches_its_path_and_below_and_keeps_the_path() -> None:
    t = table()
    t.set_trigger(trigger_route("team", "t1", "api", "/api/", ["POST"]), "2024-01-01T00:00:00Z")
    for path in (b"/api", b"/api/", b"/api/v1/x"):
        m = t.lookup(path)
        assert m is not None and m[0] == ("team", "api") and m[1] == path
    assert t.lookup(b"/apix") is None


def test_the_longest_trigger_prefix_wins() -> None:
    t = table()
    t.set_trigger(trigger_route("team", "root", "api", "/", []), "2024-01-01T00:00:00Z")
    t.set_trigger(trigger_route("default", "deep", "hello", "/a/b", []), "2024-01-02T00:00:00Z")
    assert t.lookup(b"/a/b/c")[0] == ("default", "hello")  # type: ignore[index]
    assert t.lookup(b"/a")[0] == ("team", "api")  # type: ignore[index]
    # /fn stays the Function routes', even under a "/" Trigger.
    assert t.lookup(b"/fn/default/hello")[2] is None  # type: ignore[index]


def test_methods_get_implies_head_and_allow_is_ordered() -> None:
    route = trigger_route("n", "t", "f", "/x", ["POST", "get"])
    assert route.methods == frozenset({b"GET", b"HEAD", b"POST"})
    assert route.allow == "GET, HEAD, POST"
    assert trigger_route("n", "t", "f", "/x", []).allow == "GET, HEAD, POST"


def test_the_older_trigger_keeps_a_contested_path() -> None:
    t = table()
    t.set_trigger(trigger_route("b", "newer", "hello", "/p", []), "2024-02-01T00:00:00Z")
    t.set_trigger(trigger_route("a", "older", "api", "/p/", []), "2024-01-01T00:00:00Z")
    assert t.lookup(b"/p")[0] == ("a", "api")  # type: ignore[index]
    assert set(t.conflicts) == {("b", "newer")}
    winner = t.conflicts[("b", "newer")]
    assert winner is not None and (winner.namespace, winner.name) == ("a", "older")
    # The older one goes: the newer takes the path over, and the conflict ends.
    t.remove_trigger(("a", "older"))
    assert t.lookup(b"/p")[0] == ("b", "hello")  # type: ignore[index]
    assert t.conflicts == {}


def test_same_timestamp_ties_break_on_namespace_then_name() -> None:
    claims = [HttpClaim("b", "x", "/p", "T"), HttpClaim("a", "z", "/p", "T")]
    winners, losers = path_owners(claims)
    assert winners["/p"].namespace == "a" and set(losers) == {("b", "x")}


def test_fn_paths_are_reserved() -> None:
    winners, losers = path_owners([HttpClaim("a", "t", "/fn/x", "T")])
    assert winners == {} and losers == {("a", "t"): None}
    assert "reserved" in conflict_message("/fn/x", None)
