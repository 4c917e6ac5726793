"""``python -m ember_operator``: run the operator (what ``kopf run`` would do),
with the handlers registered and every setting from the one ``Config``
(``EMBER_NAMESPACES``, ``EMBER_LOG_LEVEL``, ``EMBER_LIVENESS_ENDPOINT``, ...),
parsed once here and handed to the startup handler through kopf's memo."""

from __future__ import annotations

import gc
import logging

import kopf

from ember_operator.config import Config
from ember_operator.reconcile.lifecycle import CONFIG_MEMO


def _tune_gc() -> None:
    """Keep the import-time heap out of the cyclic collector's way and run
    it less often: with 1,000 Functions in flight the default thresholds
    made full collections a visible share of the operator's CPU."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 10, 10)


def main() -> None:
    import ember_operator.handlers  # noqa: F401  (registers the handlers)

    config = Config.from_env()
    level = config.log_level
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
        liveness_endpoint=config.liveness_endpoint,
        memo=kopf.Memo({CONFIG_MEMO: config}),
    )


if __name__ == "__main__":
    main()
