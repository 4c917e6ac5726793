"""The ``operator_reconcile`` peer: a kopf operator with no-op handlers that
watches the same objects as Ember's (Functions, and Deployments labelled
``ember.dev/function``) with the same kopf settings. What it costs is kopf's
own floor; Ember's operator is measured against it.

Run as a separate process so its RSS can be read from /proc:
``python bench/_operator_noop.py`` with EMBER_NAMESPACES and
EMBER_LIVENESS_ENDPOINT set, as bench/operator_reconcile.py does.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import kopf


@kopf.on.startup()
async def start(settings: kopf.OperatorSettings, **_: Any) -> None:
    # Same bookkeeping, event and watch settings as ember_operator.reconcile.lifecycle.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="ember.dev")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="ember.dev", key="last-handled-configuration"
    )
    settings.posting.level = logging.WARNING
    settings.watching.label_selectors["apps", "deployments"] = "ember.dev/function"


@kopf.on.create("ember.dev", "v1alpha1", "functions")
@kopf.on.update("ember.dev", "v1alpha1", "functions", field="spec")
@kopf.on.resume("ember.dev", "v1alpha1", "functions")
async def function_noop(**_: Any) -> None:
    return None


@kopf.on.event("apps", "v1", "deployments", labels={"ember.dev/function": kopf.PRESENT})
async def deployment_noop(**_: Any) -> None:
    return None


def main() -> None:
    level = os.environ.get("EMBER_LOG_LEVEL", "WARNING").upper()
    kopf.configure(verbose=False, quiet=level in ("WARNING", "ERROR"))
    logging.getLogger().setLevel(level)
    namespaces = [n for n in os.environ.get("EMBER_NAMESPACES", "").split(",") if n]
    kopf.run(
        standalone=True,
        clusterwide=not namespaces,
        namespaces=namespaces,
        liveness_endpoint=os.environ.get("EMBER_LIVENESS_ENDPOINT") or None,
    )


if __name__ == "__main__":
    main()
