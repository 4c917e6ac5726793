"""kopf's bookkeeping as Ember configures it: nothing written to an object
whose handler succeeds on its first run, and the last handled spec kept in
memory per object."""

from __future__ import annotations

from typing import Any

import kopf
import pytest

from ember_operator.config import Config
from ember_operator.reconcile.context import Context, HandledSpecs, RetryProgress

pytestmark = pytest.mark.unit


def body(uid: str = "u1", **spec: Any) -> kopf.Body:
    return kopf.Body(
        {
            "apiVersion": "ember.dev/v1alpha1",
            "kind": "Function",
            "metadata": {"namespace": "ns", "name": "fn", "uid": uid, "annotations": {}},
            "spec": {"handler": "main:handle", **spec},
        }
    )


def test_handled_spec_is_remembered_without_writing_to_the_object() -> None:
    storage = HandledSpecs()
    b = body()
    assert storage.fetch(body=b) is None  # never handled: kopf sees a creation
    patch = kopf.Patch()
    storage.store(body=b, patch=patch, essence=storage.build(body=b))
    assert not patch  # no API call
    assert storage.fetch(body=b) == {"spec": {"handler": "main:handle"}}
    # A changed spec differs from what was handled: kopf sees an update.
    assert storage.fetch(body=body(source="x")) == {"spec": {"handler": "main:handle"}}
    assert storage.build(body=body(source="x")) != storage.fetch(body=b)


def test_a_new_object_of_the_same_name_is_not_the_handled_one() -> None:
    storage = HandledSpecs()
    storage.store(body=body("old"), patch=kopf.Patch(), essence=storage.build(body=body("old")))
    assert storage.fetch(body=body("new")) is None


def test_forgetting_a_function_drops_its_spec() -> None:
    ctx = Context(config=Config(), kube=None)  # type: ignore[arg-type]
    b = body()
    ctx.handled.store(body=b, patch=kopf.Patch(), essence=ctx.handled.build(body=b))
    ctx.state(("ns", "fn"))
    ctx.forget(("ns", "fn"))
    assert ctx.handled.fetch(body=b) is None and len(ctx.handled) == 0
    assert ("ns", "fn") not in ctx.functions


def test_first_run_success_leaves_no_patch() -> None:
    # kopf records a handler's outcome, then purges records once all are done.
    storage = RetryProgress(prefix="ember.dev")
    b = body()
    patch = kopf.Patch()
    record: Any = {"started": "2026-01-01T00:00:00", "success": True}
    storage.store(key=kopf.HandlerId("function_created"), record=record, body=b, patch=patch)
    storage.purge(key=kopf.HandlerId("function_created"), body=b, patch=patch)
    assert not patch.get("metadata", {}).get("annotations")


def test_a_retry_is_still_recorded_in_annotations() -> None:
    storage = RetryProgress(prefix="ember.dev")
    patch = kopf.Patch()
    record: Any = {"started": "2026-01-01T00:00:00", "retries": 1, "delay": 5}
    storage.store(key=kopf.HandlerId("function_created"), record=record, body=body(), patch=patch)
    annotations = patch["metadata"]["annotations"]
    assert list(annotations) == ["ember.dev/function_created"]
    assert '"retries":1' in annotations["ember.dev/function_created"]


def test_essence_matches_kopfs_own() -> None:
    b = body(source="x")
    b_raw = dict(b)
    b_raw["metadata"] = {
        **b["metadata"],
        "labels": {"team": "a"},
        "annotations": {"note": "n", "kubectl.kubernetes.io/last-applied-configuration": "{}"},
        "managedFields": [{"manager": "kubectl"}],
        "resourceVersion": "7",
    }
    b_raw["status"] = {"replicas": 1, "conditions": [{"type": "Ready"}]}
    full = kopf.Body(b_raw)
    ours, kopfs = HandledSpecs(), kopf.AnnotationsDiffBaseStorage(prefix="ember.dev")
    assert ours.build(body=full) == kopfs.build(body=full)
    extra = ["status.replicas"]
    assert ours.build(body=full, extra_fields=extra) == kopfs.build(body=full, extra_fields=extra)
    assert ours.build(body=full, extra_fields=extra)["status"] == {"replicas": 1}
