"""An in-memory stand-in for ``kube.client.Kube`` and object builders, for
the handlers' unit tests (the real client is tested against the API server
in the integration tier)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ember_operator.config import Config
from ember_operator.reconcile.context import Context


class FakeKube:
    """Objects by (kind, namespace, name); records status patches and applies."""

    def __init__(self, *objects: tuple[str, dict[str, Any]]) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.patches: list[tuple[str, str, str, dict[str, Any]]] = []
        self.applied: list[dict[str, Any]] = []
        for kind, obj in objects:
            self.put(kind, obj)

    def put(self, kind: str, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        self.objects[(kind, meta.get("namespace", "ns"), meta["name"])] = obj

    def drop(self, kind: str, namespace: str, name: str) -> None:
        self.objects.pop((kind, namespace, name), None)

    async def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.objects.get((kind, namespace, name))

    async def patch_status(
        self, kind: str, namespace: str, name: str, status: Mapping[str, Any]
    ) -> bool:
        self.patches.append((kind, namespace, name, dict(status)))
        return (kind, namespace, name) in self.objects or kind == "Function"

    async def ensure(self, desired: dict[str, Any], **_: Any) -> dict[str, Any]:
        self.applied.append(desired)
        return {**desired, "status": {}}

    async def delete_owned(self, *args: Any) -> None:
        return None

    def statuses(self, kind: str, name: str) -> list[dict[str, Any]]:
        return [status for k, _, n, status in self.patches if (k, n) == (kind, name)]


def context(kube: FakeKube, **config: Any) -> Context:
    return Context(config=Config(**config), kube=kube)  # type: ignore[arg-type]


def function_body(
    name: str = "fn", namespace: str = "ns", generation: int = 1, **spec: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}"},
        "spec": {"handler": "main:handle", **spec},
    }
    body["metadata"]["generation"] = generation
    if "image" not in spec and "source" not in spec:
        body["spec"]["source"] = "def handle(event, context):\n    return event\n"
    return body


def deployment(
    ns: str = "ns", name: str = "fn", owner: str | None = "fn", ready: int | None = None
) -> dict[str, Any]:
    refs = (
        [{"kind": "Function", "name": owner, "uid": f"uid-{owner}", "controller": True}]
        if owner
        else []
    )
    d: dict[str, Any] = {"metadata": {"namespace": ns, "name": name, "ownerReferences": refs}}
    if ready is not None:
        d["metadata"]["generation"] = 1
        d["spec"] = {"replicas": 1}
        d["status"] = {
            "observedGeneration": 1,
            "replicas": 1,
            "readyReplicas": ready,
            "updatedReplicas": 1,
            "availableReplicas": ready,
        }
    return d


def pod(
    name: str = "fn-abc",
    function: str = "fn",
    *,
    waiting: Mapping[str, Any] | None = None,
    terminated: Mapping[str, Any] | None = None,
    last_terminated: Mapping[str, Any] | None = None,
    ready: bool = False,
    image: str = "ember/runtime:dev",
) -> dict[str, Any]:
    state: dict[str, Any] = {}
    if waiting is not None:
        state["waiting"] = dict(waiting)
    if terminated is not None:
        state["terminated"] = dict(terminated)
    if not state and ready:
        state["running"] = {"startedAt": "T"}
    status = {
        "name": "function",
        "image": image,
        "ready": ready,
        "restartCount": 0,
        "state": state,
        "lastState": {"terminated": dict(last_terminated)} if last_terminated else {},
    }
    return {
        "metadata": {"namespace": "ns", "name": name, "labels": {"ember.dev/function": function}},
        "spec": {"containers": [{"name": "function", "image": image}]},
        "status": {"phase": "Pending", "containerStatuses": [status]},
    }
