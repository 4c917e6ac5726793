"""Kube.watch against the real API server: events as they happen, the
version to go on from, and a clear ApiError when the watch is refused."""

from __future__ import annotations

import asyncio

import pytest

from ember_operator.kube.client import ApiError, Kube
from ember_operator.kube.resources import path
from tests.integration.control_plane.kit import Cluster

pytestmark = pytest.mark.integration


async def test_watch_streams_events_from_a_version(cluster: Cluster, namespace: str) -> None:
    kube = await Kube.connect()
    try:
        listing = await kube.request("GET", path("ConfigMap", namespace))
        version = listing["metadata"]["resourceVersion"]
        await kube.request(
            "POST",
            path("ConfigMap", namespace),
            body={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "seen"}},
        )
        query = {"resourceVersion": version, "fieldSelector": "metadata.name=seen"}
        events = kube.watch(path("ConfigMap", namespace), query, timeout_seconds=10)
        event = await asyncio.wait_for(anext(events), 10)
        await events.aclose()
        assert event["type"] == "ADDED"
        assert event["object"]["metadata"]["name"] == "seen"
    finally:
        await kube.close()


async def test_a_refused_watch_is_an_api_error_with_its_status(cluster: Cluster) -> None:
    kube = await Kube.connect()
    try:
        with pytest.raises(ApiError) as err:
            async for _ in kube.watch("/apis/ember.dev/v1alpha1/nothings", {}, timeout_seconds=5):
                pass
        assert err.value.status == 404
        bad = {"labelSelector": "not a selector!!"}
        with pytest.raises(ApiError) as err:
            async for _ in kube.watch(path("Deployment", None), bad, timeout_seconds=5):
                pass
        # The API server's own words, taken out of its Status body.
        assert err.value.status == 400
        assert err.value.message.startswith("unable to parse requirement")
    finally:
        await kube.close()
