"""Balancing: least in-flight first, never more than ``concurrency`` per pod,
and which pods count as usable as EndpointSlices and probes change."""

from __future__ import annotations

import pytest

from ember_operator.gateway.endpoints import Backend, EndpointState, backend_stats

pytestmark = pytest.mark.unit


def ep(i: int, ready: bool = True, terminating: bool = False) -> EndpointState:
    return EndpointState((f"10.0.0.{i}", 8080), ready, terminating)


def test_least_inflight_first_and_the_per_pod_cap() -> None:
    b = Backend(("ns", "fn"), concurrency=2)
    b.set_slice("s", [ep(1), ep(2)])
    taken = []
    for _ in range(4):
        pod = b.pick()
        assert pod is not None
        pod.inflight += 1
        taken.append(pod.addr[0])
    assert sorted(taken) == ["10.0.0.1", "10.0.0.1", "10.0.0.2", "10.0.0.2"]
    assert taken[0] != taken[1]  # spread, not stacked
    assert b.pick() is None  # both at the cap: the excess waits in the gateway
    b.pods[("10.0.0.2", 8080)].inflight -= 1
    assert b.pick() is b.pods[("10.0.0.2", 8080)]


def test_not_ready_pods_are_probed_not_used_until_a_probe_says_so() -> None:
    b = Backend(("ns", "fn"))
    b.set_slice("s", [ep(1, ready=False)])
    assert b.pick() is None
    assert [p.addr for p in b.starting()] == [("10.0.0.1", 8080)]
    pod = b.pods[("10.0.0.1", 8080)]
    pod.probed = True
    b.refresh()
    assert b.pick() is pod and b.starting() == []


def test_terminating_and_unlisted_pods_take_nothing_new() -> None:
    b = Backend(("ns", "fn"))
    b.set_slice("s", [ep(1), ep(2)])
    kept = b.pods[("10.0.0.1", 8080)]
    b.set_slice("s", [ep(1, ready=False, terminating=True)])
    assert kept.gone and b.pick() is None and b.starting() == []
    assert ("10.0.0.2", 8080) not in b.pods


def test_a_suspect_pod_is_probed_again() -> None:
    b = Backend(("ns", "fn"))
    b.set_slice("s", [ep(1)])
    pod = b.pods[("10.0.0.1", 8080)]
    pod.suspect = True
    b.refresh()
    assert b.pick() is None and b.starting() == [pod]


def test_two_slices_merge_and_ready_wins() -> None:
    b = Backend(("ns", "fn"))
    b.set_slice("a", [ep(1, ready=False)])
    b.set_slice("b", [ep(1), ep(2)])
    assert len(b.usable) == 2
    b.remove_slice("b")
    assert b.usable == []


def test_queue_bound_and_stats_shape() -> None:
    b = Backend(("ns", "fn"), queue_size=2)
    b.held.extend(["x", "y"])
    assert b.full
    assert backend_stats([b]) == {
        "functions": {"ns/fn": {"inflight": 0, "held": 2, "requests_total": 0}}
    }
