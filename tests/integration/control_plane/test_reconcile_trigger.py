"""Trigger status against the real API server: never Ready while nothing
serves its kind, and following its Function's creation and deletion."""

from __future__ import annotations

import pytest
from kopf.testing import KopfRunner

from tests.integration.control_plane.kit import Cluster, function, trigger
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
    cluster: Cluster, namespace: str, operator: KopfRunner
) -> None:
    ns = namespace
    cluster.create("functions", ns, function("hello"))
    cluster.create("triggers", ns, trigger("web", "hello", http={"path": "/hello"}))

    def ready() -> dict[str, str] | None:
        cond = cluster.condition(cluster.get("triggers", ns, "web"), "Ready")
        return cond if cond and cond["reason"] == "TriggerKindNotServed" else None

    cond = eventually(ready, what="TriggerKindNotServed")
    assert cond["status"] == "False" and "http Triggers" in cond["message"]
    assert cluster.get("triggers", ns, "web")["status"]["observedGeneration"] == 1  # type: ignore[index]
