"""The Function's Service: headless, on the runtime's port."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ember_operator.render.common import FunctionObject
from ember_operator.render.service import render_service

pytestmark = pytest.mark.unit

MakeFn = Callable[..., FunctionObject]


def test_service_is_headless_on_the_runtime_port(make_function: MakeFn) -> None:
    # The gateway balances over pod IPs from EndpointSlices: no virtual IP.
    svc = render_service(make_function())
    assert svc["spec"]["type"] == "ClusterIP"
    assert svc["spec"]["clusterIP"] == "None"
    assert svc["spec"]["ports"] == [
        {"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}
    ]
    assert svc["spec"]["selector"] == {"ember.dev/function": "hello"}
    assert render_service(make_function()) == svc
