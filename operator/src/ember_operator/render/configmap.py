"""The ConfigMap that carries a Function's inline source as ``main.py``."""

from __future__ import annotations

from typing import Any

from ember_operator.render.common import FunctionObject, object_meta, stamp
from ember_operator.render.names import SOURCE_KEY, configmap_name


def render_configmap(fn: FunctionObject) -> dict[str, Any] | None:
    """None for image-based Functions: they carry their code in the image."""
    if fn.spec.source is None:
        return None
    return stamp(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": object_meta(fn, configmap_name(fn.name)),
            "data": {SOURCE_KEY: fn.spec.source},
        }
    )
