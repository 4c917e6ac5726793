"""The client's error policy: what is retried, what is the user's fault,
what ``ensure`` will and will not take over."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf
import pytest

from ember_operator.kube import client as kube

pytestmark = pytest.mark.unit


def test_transient_errors_are_retried_with_delays() -> None:
    conflict = kube.transient(kube.ApiError(409, "{}"), "x")
    assert isinstance(conflict, kopf.TemporaryError) and conflict.delay == kube.CONFLICT_DELAY
    assert kube.transient(kube.ApiError(503, "{}"), "x").delay == kube.TRANSIENT_DELAY
    assert kube.transient(kube.ApiError(403, '{"message": "no"}'), "x").delay == (
        kube.FORBIDDEN_DELAY
    )


def test_merge_for_replace_keeps_server_fields() -> None:
    live = {
        "metadata": {
            "resourceVersion": "7",
            "annotations": {"deployment.kubernetes.io/revision": "3", "ember.dev/spec-hash": "a"},
            "labels": {"extra": "1"},
        },
        "spec": {"clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.1"]},
    }
    desired = {
        "kind": "Service",
        "metadata": {"annotations": {"ember.dev/spec-hash": "b"}, "labels": {"a": "b"}},
        "spec": {"type": "ClusterIP"},
    }
    body = kube._merge_for_replace(live, desired)
    assert body["metadata"]["resourceVersion"] == "7"
    assert body["metadata"]["annotations"] == {
        "deployment.kubernetes.io/revision": "3",
        "ember.dev/spec-hash": "b",
    }
    assert body["metadata"]["labels"] == {"extra": "1", "a": "b"}
    assert body["spec"]["clusterIP"] == "10.0.0.1"
    assert desired["spec"] == {"type": "ClusterIP"}  # not mutated


async def test_a_dropped_connection_is_a_temporary_error() -> None:
    """aiohttp's ClientError (a kept-alive connection the server had closed)
    is not an OSError; it must still be retried, not escape as a crash."""
    import aiohttp

    class Dropping:
        async def call_api(self, *args: object, **kwargs: object) -> None:
            raise aiohttp.ServerDisconnectedError()

    with pytest.raises(kopf.TemporaryError) as err:
        await kube.Kube(Dropping()).request("GET", "/api/v1/namespaces")
    assert err.value.delay == kube.TRANSIENT_DELAY
    assert "ServerDisconnected" in str(err.value)


class Scripted:
    """An API client that answers from a table: (method, path) -> status, body."""

    def __init__(self, answers: dict[tuple[str, str], tuple[int, Any]]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, str]] = []

    async def call_api(self, url: str, method: str, **kwargs: Any) -> Any:
        from kubernetes_asyncio.client.exceptions import ApiException

        self.calls.append((method, url))
        status, body = self.answers[(method, url)]
        if status >= 400:
            exc = ApiException(status=status, reason="x")
            exc.body = body
            raise exc
        return body


def owned(uid: str, kind: str = "Function", **extra: Any) -> dict[str, Any]:
    ref = {"kind": kind, "name": "fn", "uid": uid, "controller": True}
    meta = {"namespace": "ns", "name": "fn", "ownerReferences": [ref]}
    return {"kind": "Service", "metadata": meta, "spec": {}, **extra}


def same(live: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    return True


COLLECTION = "/api/v1/namespaces/ns/services"
OBJECT = COLLECTION + "/fn"


async def test_ensure_leaves_an_unchanged_object_alone() -> None:
    api = Scripted({("GET", OBJECT): (200, owned("u1"))})
    live = await kube.Kube(api).ensure(owned("u1"), unchanged=same, create_first=False)
    assert live["metadata"]["name"] == "fn" and api.calls == [("GET", OBJECT)]


async def test_ensure_refuses_an_object_someone_else_controls() -> None:
    foreign = owned("x", kind="Helm")
    api = Scripted({("POST", COLLECTION): (409, "{}"), ("GET", OBJECT): (200, foreign)})
    with pytest.raises(kube.NameTaken) as err:
        await kube.Kube(api).ensure(owned("u1"), unchanged=same)
    assert "not managed by this Function" in err.value.message


async def test_ensure_waits_for_an_older_owner_of_the_same_kind_to_go() -> None:
    api = Scripted({("POST", COLLECTION): (409, "{}"), ("GET", OBJECT): (200, owned("old"))})
    with pytest.raises(kopf.TemporaryError):
        await kube.Kube(api).ensure(owned("u1"), unchanged=same)


async def test_ensure_reports_an_invalid_manifest_as_refused() -> None:
    api = Scripted({("POST", COLLECTION): (422, '{"message": "spec.ports: Required"}')})
    with pytest.raises(kube.Refused) as err:
        await kube.Kube(api).ensure(owned("u1"), unchanged=same)
    assert err.value.message.endswith("spec.ports: Required")


async def test_ensure_replaces_on_drift_keeping_the_live_version() -> None:
    live = owned("u1")
    live["metadata"]["resourceVersion"] = "9"
    api = Scripted({("GET", OBJECT): (200, live), ("PUT", OBJECT): (200, owned("u1"))})
    await kube.Kube(api).ensure(owned("u1"), unchanged=lambda a, b: False, create_first=False)
    assert api.calls == [("GET", OBJECT), ("PUT", OBJECT)]
