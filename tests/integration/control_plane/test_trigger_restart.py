"""An operator (re)start with rival HTTP Triggers already present: every
status written on the way names the older one the owner of the path.

kopf hands the listed Triggers to their handlers in list order (by name),
one by one. The newer Trigger here sorts first, so an operator that knew
only the Triggers handled so far would call it Routed for a moment, and
the gateway and the status would disagree. Every status change is read
off a watch, so a flicker of one write is seen, not sampled away."""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import pytest
from kubernetes import watch

from ember_operator.api.v1alpha1 import GROUP, VERSION
from tests.integration.control_plane.kit import Cluster, function, run_operator, trigger
from tests.integration.control_plane.test_reconcile_trigger import a_second_later, reason_of
from tests.kube_helpers import eventually

pytestmark = pytest.mark.integration


class StatusLog:
    """Every (name, Ready reason) the API server reports, from a watch."""

    def __init__(self, cluster: Cluster, namespace: str) -> None:
        self.seen: list[tuple[str, str]] = []
        self._watch = watch.Watch()
        self._thread = threading.Thread(target=self._run, args=(cluster, namespace), daemon=True)
        self._thread.start()

    def _run(self, cluster: Cluster, namespace: str) -> None:
        with contextlib.suppress(Exception):  # the namespace goes at the end of the test
            self._follow(cluster, namespace)

    def _follow(self, cluster: Cluster, namespace: str) -> None:
        stream = self._watch.stream(
            cluster.custom.list_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            "triggers",
            timeout_seconds=120,
        )
        for event in stream:
            obj: dict[str, Any] = event["object"]
            cond = cluster.condition(obj, "Ready")
            if cond:
                self.seen.append((obj["metadata"]["name"], cond["reason"]))

    def reasons(self, name: str) -> list[str]:
        return [r for n, r in self.seen if n == name]

    def stop(self) -> None:
        self._watch.stop()


PAIRS = 12


def test_the_older_trigger_is_never_reported_conflicting_across_restarts(
    cluster: Cluster, namespace: str, operator_env: None
) -> None:
    ns = namespace
    cluster.create("functions", ns, function("hello"))
    # Pairs of rivals; each newer one sorts (and is listed) before every older one.
    for i in range(PAIRS):
        cluster.create("triggers", ns, trigger(f"z{i}-older", "hello", http={"path": f"/{ns}/{i}"}))
    a_second_later()
    for i in range(PAIRS):
        cluster.create("triggers", ns, trigger(f"a{i}-newer", "hello", http={"path": f"/{ns}/{i}"}))
    log = StatusLog(cluster, ns)

    def settled() -> bool:
        return all(
            reason_of(cluster, ns, f"z{i}-older") == "Routed"
            and reason_of(cluster, ns, f"a{i}-newer") == "PathConflict"
            for i in range(PAIRS)
        )

    try:
        for _ in range(2):  # a first start, then a restart over stored statuses
            with run_operator(ns) as runner:
                eventually(settled, what="the older Routed, the newer PathConflict")
            assert runner.exception is None, runner.output
        eventually(lambda: len(log.seen) >= 2 * PAIRS, what="the watch saw the statuses")
    finally:
        log.stop()
    for i in range(PAIRS):
        assert set(log.reasons(f"z{i}-older")) == {"Routed"}, log.seen
        assert set(log.reasons(f"a{i}-newer")) == {"PathConflict"}, log.seen
