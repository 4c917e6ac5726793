"""Paths of objects and collections, from one table."""

from __future__ import annotations

import pytest

from ember_operator.kube.resources import RESOURCES, path

pytestmark = pytest.mark.unit


def test_paths() -> None:
    assert path("Deployment", "ns", "x") == "/apis/apps/v1/namespaces/ns/deployments/x"
    assert path("Function", "ns", "f", "status") == (
        "/apis/ember.dev/v1alpha1/namespaces/ns/functions/f/status"
    )
    assert path("ConfigMap", "ns") == "/api/v1/namespaces/ns/configmaps"
    assert path("Deployment", None) == "/apis/apps/v1/deployments"
    assert RESOURCES["EndpointSlice"].path("ns") == (
        "/apis/discovery.k8s.io/v1/namespaces/ns/endpointslices"
    )
