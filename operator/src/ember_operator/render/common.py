"""What every owned object shares: the parsed Function it is rendered from,
metadata with the owner reference, and the spec hash that detects drift.

The hash covers the rendered object minus ``spec.replicas``, the one field the
autoscaler owns; comparing it with the live object's annotation tells the
operator whether an update is due without diffing server-defaulted fields.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ember_operator.api.v1alpha1 import API_VERSION, FunctionSpec
from ember_operator.render.labels import SPEC_HASH_ANNOTATION, function_labels


@dataclass(frozen=True)
class FunctionObject:
    """A Function as the renderers need it: identity plus the parsed spec."""

    name: str
    namespace: str
    uid: str
    spec: FunctionSpec

    @classmethod
    def from_body(cls, body: Any) -> FunctionObject:
        meta = body["metadata"]
        return cls(
            name=meta["name"],
            namespace=meta["namespace"],
            uid=meta["uid"],
            spec=FunctionSpec.model_validate(dict(body.get("spec") or {})),
        )


def owner_reference(fn: FunctionObject) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Function",
        "name": fn.name,
        "uid": fn.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def object_meta(fn: FunctionObject, name: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": fn.namespace,
        "labels": function_labels(fn.name),
        "annotations": {},
        "ownerReferences": [owner_reference(fn)],
    }


def digest(value: Any) -> str:
    """A short, stable hash of any JSON-able value."""
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def spec_hash(manifest: dict[str, Any]) -> str:
    hashed = {k: v for k, v in manifest.items() if k != "metadata"}
    hashed["metadata"] = {
        k: v for k, v in manifest["metadata"].items() if k in ("labels", "ownerReferences")
    }
    if isinstance(hashed.get("spec"), dict):
        hashed["spec"] = {k: v for k, v in hashed["spec"].items() if k != "replicas"}
    return digest(hashed)


def unchanged(live: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    """Whether a live object still carries the spec hash of ``desired``
    (what ``Kube.ensure`` asks before it replaces anything)."""
    return _hash_of(live) == _hash_of(desired)


def _hash_of(obj: Mapping[str, Any]) -> str | None:
    value = ((obj.get("metadata") or {}).get("annotations") or {}).get(SPEC_HASH_ANNOTATION)
    return str(value) if value is not None else None


def stamp(manifest: dict[str, Any]) -> dict[str, Any]:
    """Write the spec hash into the manifest's annotations (returns it)."""
    manifest["metadata"].setdefault("annotations", {})[SPEC_HASH_ANNOTATION] = spec_hash(manifest)
    return manifest
