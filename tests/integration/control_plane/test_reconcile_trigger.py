"""Trigger status against the real API server: never Ready while nothing
serves its kind, following its Function's creation and deletion, and, with
a gateway configured (``operator_env`` sets its URL), HTTP Triggers Routed
unless an older one holds their path."""

from __future__ import annotations

import time
from typing import Any

import pytest
from kopf.testing import KopfRunner

from tests.integration.control_plane.kit import Cluster, function, run_operator, trigger
from tests.kube_helpers import eventually

pytestmark = pytest.mark.integration


def test_trigger_status_follows_its_function(
    cluster: Cluster, namespace: str, operator: KopfRunner
) -> None:
    ns = namespace
    cluster.create("triggers", ns, trigger("every-minute", "later", schedule={"cron": "* * * * *"}))

    def ready() -> dict[str, str]:
        cond = cluster.condition(cluster.get("triggers", ns, "every-minute"), "Ready")
        return cond or {}

    eventually(lambda: ready().get("reason") == "FunctionNotFound", what="FunctionNotFound")
    assert ready()["status"] == "False"

    cluster.create("functions", ns, function("later"))
    eventually(lambda: ready().get("reason") == "TriggerKindNotServed", what="TriggerKindNotServed")
    cond = ready()
    assert cond["status"] == "False" and "schedule Triggers" in cond["message"]

    cluster.delete("functions", ns, "later")
    eventually(lambda: ready().get("reason") == "FunctionNotFound", what="FunctionNotFound again")


def test_an_http_trigger_is_not_ready_while_no_gateway_serves_it(
    cluster: Cluster, namespace: str, operator_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    ns = namespace
    monkeypatch.delenv("EMBER_GATEWAY_URL")
    with run_operator(ns) as runner:
        cluster.create("functions", ns, function("hello"))
        cluster.create("triggers", ns, trigger("web", "hello", http={"path": "/hello"}))

        def ready() -> dict[str, str] | None:
            cond = cluster.condition(cluster.get("triggers", ns, "web"), "Ready")
            return cond if cond and cond["reason"] == "TriggerKindNotServed" else None

        cond = eventually(ready, what="TriggerKindNotServed")
        assert cond["status"] == "False" and "http Triggers" in cond["message"]
        status = (cluster.get("triggers", ns, "web") or {})["status"]
        assert status["observedGeneration"] == 1 and "url" not in status
    assert runner.exception is None, runner.output


def trigger_status(cluster: Cluster, ns: str, name: str) -> dict[str, Any]:
    return dict((cluster.get("triggers", ns, name) or {}).get("status") or {})


def reason_of(cluster: Cluster, ns: str, name: str) -> str | None:
    cond = cluster.condition(cluster.get("triggers", ns, name), "Ready")
    return cond["reason"] if cond else None


def a_second_later() -> None:
    """creationTimestamp counts whole seconds, and a tie goes to the first
    namespace/name: make the next Trigger younger for real."""
    time.sleep(1.1)


def test_with_a_gateway_the_older_http_trigger_owns_its_path(
    cluster: Cluster, namespace: str, operator: KopfRunner
) -> None:
    ns = namespace
    # Paths are global across namespaces: one unique to this test's namespace.
    path = f"/{ns}/hello"
    cluster.create("functions", ns, function("hello"))
    cluster.create("triggers", ns, trigger("first", "hello", http={"path": path}))
    eventually(lambda: reason_of(cluster, ns, "first") == "Routed", what="first Routed")
    first = trigger_status(cluster, ns, "first")
    assert first["conditions"][0]["status"] == "True"
    assert first["url"] == f"http://gw.test{path}"

    # Same path (a trailing slash is the same claim), created later: it loses.
    a_second_later()
    cluster.create("triggers", ns, trigger("second", "hello", http={"path": path + "/"}))
    eventually(lambda: reason_of(cluster, ns, "second") == "PathConflict", what="PathConflict")
    second = trigger_status(cluster, ns, "second")
    assert second["conditions"][0]["status"] == "False"
    assert f"{ns}/first" in second["conditions"][0]["message"]
    assert "url" not in second
    assert reason_of(cluster, ns, "first") == "Routed"

    # A schedule Trigger on the same Function is still served by nothing.
    cluster.create("triggers", ns, trigger("tick", "hello", schedule={"cron": "* * * * *"}))
    eventually(lambda: reason_of(cluster, ns, "tick") == "TriggerKindNotServed", what="NotServed")

    # The winner is deleted: the path passes to the second.
    cluster.delete("triggers", ns, "first")
    eventually(lambda: reason_of(cluster, ns, "second") == "Routed", what="second Routed")
    assert trigger_status(cluster, ns, "second")["url"] == f"http://gw.test{path}"


def test_a_winner_that_moves_frees_its_path(
    cluster: Cluster, namespace: str, operator: KopfRunner
) -> None:
    ns = namespace
    path = f"/{ns}/api"
    cluster.create("functions", ns, function("hello"))
    cluster.create("triggers", ns, trigger("old", "hello", http={"path": path}))
    eventually(lambda: reason_of(cluster, ns, "old") == "Routed", what="old Routed")
    a_second_later()  # "new" sorts first by name: only its age makes it lose
    cluster.create("triggers", ns, trigger("new", "hello", http={"path": path}))
    eventually(lambda: reason_of(cluster, ns, "new") == "PathConflict", what="PathConflict")

    cluster.patch("triggers", ns, "old", {"spec": {"http": {"path": path + "/v2"}}})
    eventually(lambda: reason_of(cluster, ns, "new") == "Routed", what="new Routed")
    eventually(
        lambda: trigger_status(cluster, ns, "old").get("url") == f"http://gw.test{path}/v2",
        what="the moved URL",
    )


def test_with_a_dispatcher_schedules_are_scheduled_or_say_what_is_wrong(
    cluster: Cluster, namespace: str, operator_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    ns = namespace
    monkeypatch.setenv("EMBER_DISPATCHER_ENABLED", "true")
    with run_operator(ns) as runner:
        cluster.create("functions", ns, function("hello"))
        cluster.create("triggers", ns, trigger("tick", "hello", schedule={"cron": "*/5 * * * * *"}))
        cluster.create("triggers", ns, trigger("orders", "hello", queue={"stream": "orders"}))
        # The schema takes it (five fields), the cron library does not (hour 25).
        cluster.create("triggers", ns, trigger("bad", "hello", schedule={"cron": "0 25 * * *"}))
        zone = {"cron": "0 9 * * *", "timezone": "Europe/Atlantis"}
        cluster.create("triggers", ns, trigger("nowhere", "hello", schedule=zone))
        eventually(lambda: reason_of(cluster, ns, "tick") == "Scheduled", what="Scheduled")
        eventually(lambda: reason_of(cluster, ns, "orders") == "Consuming", what="Consuming")
        eventually(lambda: reason_of(cluster, ns, "bad") == "InvalidSchedule", what="bad cron")
        eventually(lambda: reason_of(cluster, ns, "nowhere") == "InvalidSchedule", what="bad zone")
        bad = cluster.condition(cluster.get("triggers", ns, "bad"), "Ready") or {}
        assert bad["status"] == "False"
        assert bad["message"] == "spec.schedule.cron: Bad hour in '0 25 * * *'"
        nowhere = cluster.condition(cluster.get("triggers", ns, "nowhere"), "Ready") or {}
        assert nowhere["message"].startswith("spec.schedule.timezone: unknown time zone")
        # Fixed: Scheduled.
        cluster.patch("triggers", ns, "bad", {"spec": {"schedule": {"cron": "0 23 * * *"}}})
        eventually(lambda: reason_of(cluster, ns, "bad") == "Scheduled", what="fixed")
    assert runner.exception is None, runner.output
