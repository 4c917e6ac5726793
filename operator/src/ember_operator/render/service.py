"""The ClusterIP Service the gateway proxies to (port 80 -> the pod's ``http``)."""

from __future__ import annotations

from typing import Any

from ember_operator.render.common import FunctionObject, object_meta, stamp
from ember_operator.render.labels import selector_labels
from ember_operator.render.names import PORT_NAME, SERVICE_PORT, service_name


def render_service(fn: FunctionObject) -> dict[str, Any]:
    return stamp(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": object_meta(fn, service_name(fn.name)),
            "spec": {
                "type": "ClusterIP",
                "selector": selector_labels(fn.name),
                "ports": [
                    {
                        "name": PORT_NAME,
                        "port": SERVICE_PORT,
                        "targetPort": PORT_NAME,
                        "protocol": "TCP",
                    }
                ],
            },
        }
    )
