"""One settings object, from flags with environment-variable defaults.

The operator sets the ``EMBER_*`` variables on function pods; on a laptop
the same names work as flags (``--target main:handle --source ./main.py``).
A flag wins over its variable.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from ember_runtime.errors import LoadError, LoadFault


@dataclass(frozen=True, slots=True)
class Settings:
    target: str
    source: str | None = None
    host: str = "0.0.0.0"
    port: int = 8080
    timeout_seconds: float = 30.0
    concurrency: int = 4
    queue_depth: int = 4
    max_body_bytes: int = 6 * 1024 * 1024
    max_header_bytes: int = 16 * 1024
    function: str = ""
    metrics: bool = True
    spare_workers: int = 1

    @property
    def pool_size(self) -> int:
        return self.concurrency + self.spare_workers


# (flag, env var, type, help); the dataclass default applies when both are unset.
_OPTIONS: list[tuple[str, str, type, str]] = [
    ("target", "EMBER_TARGET", str, "handler as module:function, e.g. main:handle"),
    ("source", "EMBER_SOURCE", str, "file holding the module; omit to import from sys.path"),
    ("host", "EMBER_HOST", str, "address to listen on"),
    ("port", "EMBER_PORT", int, "port to listen on"),
    ("timeout_seconds", "EMBER_TIMEOUT_SECONDS", float, "per-invocation timeout (504 after)"),
    ("concurrency", "EMBER_CONCURRENCY", int, "invocations in flight at most"),
    ("queue_depth", "EMBER_QUEUE_DEPTH", int, "invocations queued beyond that before 429"),
    ("max_body_bytes", "EMBER_MAX_BODY_BYTES", int, "request body limit (413 above)"),
    ("max_header_bytes", "EMBER_MAX_HEADER_BYTES", int, "request line + headers limit (431)"),
    ("function", "EMBER_FUNCTION", str, "function name for logs and metrics, e.g. default/hello"),
    ("metrics", "EMBER_METRICS", str, "1 to keep Prometheus metrics, 0 to turn them off"),
    ("spare_workers", "EMBER_SPARE_WORKERS", int, "warm workers kept beyond concurrency"),
]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def parse_settings(argv: Sequence[str], env: Mapping[str, str] = os.environ) -> Settings:
    """Build settings; raises ``LoadError(INVALID_CONFIG)`` on a bad value."""
    parser = argparse.ArgumentParser(
        prog="python -m ember_runtime",
        description="Serve a handle(event, context) function over HTTP.",
        epilog="Every flag also reads its EMBER_* environment variable.",
    )
    for name, var, _kind, help_ in _OPTIONS:
        parser.add_argument("--" + name.replace("_", "-"), dest=name, help=f"{help_} [{var}]")
    args = vars(parser.parse_args(list(argv)))
    values: dict[str, object] = {}
    for name, var, kind, _help in _OPTIONS:
        raw = args.get(name)
        if raw is None:
            raw = env.get(var) or None
        if raw is None:
            continue
        try:
            if name == "metrics":
                low = str(raw).strip().lower()
                if low not in _TRUE | _FALSE:
                    raise ValueError(raw)
                values[name] = low in _TRUE
            else:
                values[name] = kind(raw)
        except ValueError:
            raise LoadError(
                LoadFault.INVALID_CONFIG, f"{var} / --{name.replace('_', '-')}: bad value {raw!r}"
            ) from None
    if "target" not in values:
        raise LoadError(LoadFault.INVALID_CONFIG, "no handler given: set --target or EMBER_TARGET")
    if "queue_depth" not in values and "concurrency" in values:
        values["queue_depth"] = values["concurrency"]
    settings = Settings(**values)  # type: ignore[arg-type]
    problems = [
        msg
        for ok, msg in (
            (settings.concurrency >= 1, "concurrency must be at least 1"),
            (settings.queue_depth >= 0, "queue depth must not be negative"),
            (settings.timeout_seconds > 0, "timeout must be positive"),
            (settings.max_body_bytes >= 0, "max body bytes must not be negative"),
            (settings.max_header_bytes >= 256, "max header bytes must be at least 256"),
            (settings.spare_workers >= 1, "keep at least one spare worker"),
            (0 <= settings.port <= 65535, "port must be 0..65535"),
        )
        if not ok
    ]
    if problems:
        raise LoadError(LoadFault.INVALID_CONFIG, "; ".join(problems))
    if not settings.function:
        settings = replace(settings, function=settings.target.partition(":")[0])
    return settings
