"""The integration tier has a real API server: a CRD applied to it becomes
Established and its resource is served, validated and stored."""

from __future__ import annotations

import pytest
from kubernetes import client

from tests.kube_helpers import api_client, eventually, unique_name

pytestmark = pytest.mark.integration


def _crd(plural: str, group: str) -> dict[str, object]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": plural, "singular": plural[:-1], "kind": "Probe"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "properties": {"size": {"type": "integer", "minimum": 1}},
                                }
                            },
                        }
                    },
                }
            ],
        },
    }


def test_crd_becomes_established_and_serves(kubeconfig):
    api = api_client(kubeconfig)
    ext = client.ApiextensionsV1Api(api)
    group = f"{unique_name('h')}.harness.ember.dev"
    name = f"probes.{group}"
    ext.create_custom_resource_definition(_crd("probes", group))
    try:

        def established() -> bool:
            crd = ext.read_custom_resource_definition(name)
            return any(
                c.type == "Established" and c.status == "True" for c in crd.status.conditions or []
            )

        eventually(established, timeout=60, what=f"CRD {name} Established")
        objs = client.CustomObjectsApi(api)

        def create(name: str, size: int) -> dict[str, object]:
            body = {
                "apiVersion": f"{group}/v1",
                "kind": "Probe",
                "metadata": {"name": name},
                "spec": {"size": size},
            }
            return objs.create_namespaced_custom_object(group, "v1", "default", "probes", body)

        created = eventually(lambda: create("p", 2), timeout=30, what="the resource to be served")
        assert created["spec"] == {"size": 2}
        with pytest.raises(client.ApiException) as bad:
            create("q", 0)
        assert bad.value.status == 422
        assert "spec.size" in bad.value.body
    finally:
        ext.delete_custom_resource_definition(name)
