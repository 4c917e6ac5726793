"""Reading ownership off any object's metadata: which controller owns it.

Pure helpers shared by the client (``ensure`` refuses to adopt what another
controller owns) and by the handlers (which Function a Deployment answers
to), kept apart from the client so the handlers can use them without a
connection.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

Key = tuple[str, str]  # (namespace, name)


def controller_ref(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return dict(ref)
    return None


def controller_uid(obj: Mapping[str, Any]) -> str | None:
    ref = controller_ref(obj)
    return str(ref.get("uid")) if ref is not None else None


def controlled_by(obj: Mapping[str, Any], kind: str) -> tuple[Key, Mapping[str, Any]] | None:
    """(namespace, name) of the ``kind`` object controlling ``obj``, and the
    owner reference itself; None when nothing of that kind controls it."""
    owner = controller_ref(obj)
    namespace = (obj.get("metadata") or {}).get("namespace")
    if owner is None or owner.get("kind") != kind or not namespace:
        return None
    return (str(namespace), str(owner["name"])), owner


def object_key(obj: Mapping[str, Any]) -> Key:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name"))
