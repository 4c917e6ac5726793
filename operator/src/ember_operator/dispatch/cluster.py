"""The dispatcher's watches: Functions and Triggers, through the shared
informer, into the ``SourceSet`` (and the cron scheduler).

Readiness waits for the first list of both: a dispatcher that has not
seen its sources yet reads nothing, and should say so.
"""

from __future__ import annotations

from ember_operator.config import namespace_matches
from ember_operator.dispatch.sources import SourceSet
from ember_operator.kube.client import Kube
from ember_operator.kube.listing import Apply, Watches, namespace_scope


class ClusterSources(Watches):
    """Functions and Triggers into ``sources`` and into every ``also``
    (the cron scheduler reads the same events)."""

    def __init__(
        self,
        kube: Kube,
        sources: SourceSet,
        namespaces: tuple[str, ...],
        also: tuple[Apply, ...] = (),
    ) -> None:
        super().__init__(
            kube,
            ("Function", "Trigger"),
            (sources.apply, *also),
            namespace_scope(namespaces, namespace_matches),
        )
