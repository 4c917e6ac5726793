"""``python -m ember_operator.gateway``: serve clients on ``EMBER_PORT``
(8080) and the admin endpoints on ``EMBER_ADMIN_PORT`` (9090), with every
setting from ``GatewaySettings.from_env``, on uvloop as the runtime does."""

from __future__ import annotations

import sys

from ember_operator.gateway.config import GatewaySettings
from ember_operator.gateway.server import serve


def main() -> None:
    try:
        settings = GatewaySettings.from_env()
    except ValueError as e:
        print(f"ember gateway: invalid settings: {e}", file=sys.stderr)
        raise SystemExit(2) from e
    import uvloop

    raise SystemExit(uvloop.run(serve(settings)))


if __name__ == "__main__":
    main()
