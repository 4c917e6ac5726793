"""The gateway's watches on the cluster: Functions, Triggers and the
EndpointSlices of Function Services, through the shared informer.

The gateway must not take traffic before it knows its routes: ``synced`` is
true once every watch has listed (``kube.listing.SyncedInformer``).
"""

from __future__ import annotations

from ember_operator.config import namespace_matches
from ember_operator.gateway.config import GatewaySettings
from ember_operator.gateway.feed import Feed
from ember_operator.kube.client import Kube
from ember_operator.kube.listing import Watches, namespace_scope
from ember_operator.render.labels import FUNCTION_LABEL

# Function Services carry the Function label, and their EndpointSlices copy
# the Service's labels: one selector finds exactly the slices that matter.
SLICE_SELECTOR = FUNCTION_LABEL


class ClusterFeed(Watches):
    def __init__(self, kube: Kube, feed: Feed, settings: GatewaySettings) -> None:
        super().__init__(
            kube,
            ("Function", "Trigger", "EndpointSlice"),
            (feed.apply,),
            namespace_scope(settings.namespaces, namespace_matches),
            {"EndpointSlice": SLICE_SELECTOR},
        )
