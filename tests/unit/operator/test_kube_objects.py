"""Ownership read off metadata: which controller owns an object."""

from __future__ import annotations

import pytest

from ember_operator.kube.objects import controlled_by, controller_uid, object_key

pytestmark = pytest.mark.unit


def test_controller_ref() -> None:
    obj = {"metadata": {"ownerReferences": [{"uid": "u", "controller": True, "kind": "Function"}]}}
    assert controller_uid(obj) == "u"
    assert controller_uid({"metadata": {}}) is None
    assert controlled_by(obj, "Function") is None  # no namespace
    obj["metadata"]["namespace"] = "ns"
    obj["metadata"]["ownerReferences"][0]["name"] = "fn"
    key, owner = controlled_by(obj, "Function")  # type: ignore[misc]
    assert key == ("ns", "fn") and owner["uid"] == "u"
    obj["metadata"]["ownerReferences"][0]["kind"] = "ReplicaSet"
    assert controlled_by(obj, "Function") is None


def test_object_key_is_namespace_and_name() -> None:
    assert object_key({"metadata": {"namespace": "ns", "name": "a"}}) == ("ns", "a")
    assert object_key({"metadata": {"name": "cluster-scoped"}}) == ("", "cluster-scoped")
