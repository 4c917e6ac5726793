"""``python -m ember_operator``: run the operator (what ``kopf run`` would do),
with the handlers registered and the watched namespaces taken from
``EMBER_NAMESPACES`` (empty: all namespaces)."""

from __future__ import annotations

import logging
import os

import kopf

from ember_operator.config import Config


def main() -> None:
    import ember_operator.reconcile  # noqa: F401  (registers the handlers)

    config = Config.from_env()
    level = os.environ.get("EMBER_LOG_LEVEL", "INFO").upper()
    kopf.configure(verbose=level == "DEBUG", debug=False, quiet=level in ("WARNING", "ERROR"))
    logging.getLogger().setLevel(level)
    kopf.run(
        standalone=True,
        clusterwide=config.clusterwide,
        namespaces=config.namespaces,
        liveness_endpoint=os.environ.get("EMBER_LIVENESS_ENDPOINT") or None,
    )


if __name__ == "__main__":
    main()
