"""The Function's Service: headless, selecting its pods.

The gateway load-balances on pod IPs itself (it needs per-pod concurrency
to route well), fed by the EndpointSlices this Service publishes, so the
Service needs no virtual IP. Without one there is no ClusterIP to allocate
(the API server allocates them one at a time: 750 ms per Service create
under a burst of 1,000 Functions on the benchmark machine, against 56 ms
headless) and no kube-proxy rules per Function on every node. In-cluster
clients still reach a function directly at ``<name>.<namespace>.svc:8080``.
"""

from __future__ import annotations

from typing import Any

from ember_operator.render.common import FunctionObject, object_meta, stamp
from ember_operator.render.labels import selector_labels
from ember_operator.render.names import CONTAINER_PORT, PORT_NAME, service_name


def render_service(fn: FunctionObject) -> dict[str, Any]:
    return stamp(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": object_meta(fn, service_name(fn.name)),
            "spec": {
                "type": "ClusterIP",
                "clusterIP": "None",
                "selector": selector_labels(fn.name),
                "ports": [
                    {
                        "name": PORT_NAME,
                        "port": CONTAINER_PORT,
                        "targetPort": PORT_NAME,
                        "protocol": "TCP",
                    }
                ],
            },
        }
    )
