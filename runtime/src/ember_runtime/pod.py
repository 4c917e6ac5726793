"""What the operator and the runtime agree on about a function pod: the
port, the probe paths, and how a setting becomes an environment variable.

One definition, imported by both sides (the operator depends on this
package), so a renamed path or variable cannot leave the two out of step; a
unit test renders a Deployment and parses its environment with the runtime's
own settings parser.
"""

from __future__ import annotations

PORT = 8080
PORT_NAME = "http"
HEALTH_PATH = "/_/health"
READY_PATH = "/_/ready"
STATS_PATH = "/_/stats"
METRICS_PATH = "/metrics"
TERMINATION_LOG = "/dev/termination-log"
ENV_PREFIX = "EMBER_"


def env_var(setting: str) -> str:
    """The variable that carries a runtime setting: ``timeout_seconds`` →
    ``EMBER_TIMEOUT_SECONDS``."""
    return ENV_PREFIX + setting.upper()
