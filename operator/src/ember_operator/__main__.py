"""``python -m ember_operator``: run the operator (what ``kopf run`` would do),
with the handlers registered and the watched namespaces taken from
``EMBER_NAMESPACES`` (empty: all namespaces)."""

from __future__ import annotations

import gc
import logging
import os

import kopf

from ember_operator.config import Config


def _tune_gc() -> None:
    """Keep the import-time heap out of the cyclic collector's way and run
    it less often: with 1,000 Functions in flight the default thresholds
    made full collections a visible share of the operator's CPU."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 10, 10)


def main() -> None:
    import ember_operator.reconcile  # noqa: F401  (registers the handlers)

    config = Config.from_env()
    level = os.environ.get("EMBER_LOG_LEVEL", "INFO").upper()
    # JSON lines, one per record, with the object a record is about under
    # "object" (kopf's refkey), like every Ember component's logs.
    kopf.configure(
        verbose=level == "DEBUG",
        debug=False,
        quiet=level in ("WARNING", "ERROR"),
        log_format=kopf.LogFormat.JSON,
        log_refkey="object",
    )
    logging.getLogger().setLevel(level)
    _tune_gc()
    kopf.run(
        standalone=True,
        clusterwide=config.clusterwide,
        namespaces=config.namespaces,
        liveness_endpoint=os.environ.get("EMBER_LIVENESS_ENDPOINT") or None,
    )


if __name__ == "__main__":
    main()
