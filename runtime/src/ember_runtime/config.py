"""One settings object, from flags with environment-variable defaults.

The operator sets the ``EMBER_*`` variables on function pods; on a laptop
the same names work as flags (``--target main:handle --source ./main.py``).
A flag wins over its variable. Flags are read by hand and ``argparse`` is
only imported for ``--help`` or a flag it must reject: the settings are on
the boot path, and pods pass none.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from ember_runtime.errors import LoadError, LoadFault
from ember_runtime.pod import PORT, env_var


class Settings:
    """Everything the runtime can be told; read-only after parsing."""

    __slots__ = (
        "body_timeout_seconds",
        "concurrency",
        "function",
        "header_timeout_seconds",
        "host",
        "idle_timeout_seconds",
        "max_body_bytes",
        "max_connections",
        "max_header_bytes",
        "max_pipelined",
        "metrics",
        "port",
        "queue_depth",
        "signing_key",
        "source",
        "spare_workers",
        "target",
        "timeout_seconds",
        "worker_max_calls",
        "write_buffer_bytes",
    )

    def __init__(
        self,
        target: str,
        source: str | None = None,
        host: str = "0.0.0.0",
        port: int = PORT,
        timeout_seconds: float = 30.0,
        concurrency: int = 4,
        queue_depth: int | None = None,
        max_body_bytes: int = 6 * 1024 * 1024,
        max_header_bytes: int = 16 * 1024,
        function: str = "",
        metrics: bool = True,
        spare_workers: int = 1,
        header_timeout_seconds: float = 10.0,
        body_timeout_seconds: float = 60.0,
        idle_timeout_seconds: float = 75.0,
        max_connections: int = 1000,
        max_pipelined: int = 16,
        write_buffer_bytes: int = 256 * 1024,
        worker_max_calls: int = 0,
        signing_key: bytes = b"",
    ) -> None:
        self.target = target
        self.source = source
        self.host = host
        self.port = port
        self.timeout_seconds = timeout_seconds
        self.concurrency = concurrency
        self.queue_depth = concurrency if queue_depth is None else queue_depth
        self.max_body_bytes = max_body_bytes
        self.max_header_bytes = max_header_bytes
        self.function = function or target.partition(":")[0]
        self.metrics = metrics
        self.spare_workers = spare_workers
        self.header_timeout_seconds = header_timeout_seconds
        self.body_timeout_seconds = body_timeout_seconds
        self.idle_timeout_seconds = idle_timeout_seconds
        self.max_connections = max_connections
        self.max_pipelined = max_pipelined
        self.write_buffer_bytes = write_buffer_bytes
        self.worker_max_calls = worker_max_calls
        # Empty: calls are not checked (a laptop). Else see ``signing``.
        self.signing_key = signing_key

    @property
    def pool_size(self) -> int:
        return self.concurrency + self.spare_workers

    def __repr__(self) -> str:
        fields = ", ".join(
            f"{k}={'<hidden>' if k in SECRET_SETTINGS else repr(getattr(self, k))}"
            for k in self.__slots__
        )
        return f"Settings({fields})"


# Never echoed in a repr or an error message (which reaches the pod's
# termination log and ``kubectl describe``).
SECRET_SETTINGS = frozenset({"signing_key"})


def _hex_key(value: str) -> bytes:
    """``EMBER_SIGNING_KEY``: hex, at least 16 bytes. Parsed here rather than
    in ``signing`` so that settings never import hashlib (the boot path)."""
    key = bytes.fromhex(value.strip())
    if len(key) < 16:
        raise ValueError("too short")
    return key


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _flag(value: str) -> bool:
    low = value.strip().lower()
    if low not in _TRUE | _FALSE:
        raise ValueError(value)
    return low in _TRUE


# (setting, env var, parser, help); the Settings default applies when both are unset.
OPTIONS: list[tuple[str, str, type | object, str]] = [
    ("target", env_var("target"), str, "handler as module:function, e.g. main:handle"),
    ("source", env_var("source"), str, "file holding the module; omit to import from sys.path"),
    ("host", env_var("host"), str, "address to listen on (default 0.0.0.0)"),
    ("port", env_var("port"), int, "port to listen on (default 8080)"),
    (
        "timeout_seconds",
        env_var("timeout_seconds"),
        float,
        "per-invocation timeout, 504 after (30)",
    ),
    ("concurrency", env_var("concurrency"), int, "invocations in flight at most (4)"),
    ("queue_depth", env_var("queue_depth"), int, "queued beyond that before 429 (= concurrency)"),
    ("max_body_bytes", env_var("max_body_bytes"), int, "request body limit, 413 above (6 MiB)"),
    ("max_header_bytes", env_var("max_header_bytes"), int, "request line + headers, 431 (16 KiB)"),
    ("function", env_var("function"), str, "name for logs and metrics, e.g. default/hello"),
    ("metrics", env_var("metrics"), _flag, "1 keeps Prometheus metrics, 0 turns them off (1)"),
    ("spare_workers", env_var("spare_workers"), int, "warm workers kept beyond concurrency (1)"),
    (
        "worker_max_calls",
        env_var("worker_max_calls"),
        int,
        "replace a worker after this many calls; 0 never does (0)",
    ),
    (
        "header_timeout_seconds",
        env_var("header_timeout_seconds"),
        float,
        "a request head must arrive within this, else 408 (10)",
    ),
    (
        "body_timeout_seconds",
        env_var("body_timeout_seconds"),
        float,
        "a body must arrive (and a blocked answer be read) within this, else 408 (60)",
    ),
    (
        "idle_timeout_seconds",
        env_var("idle_timeout_seconds"),
        float,
        "an idle keep-alive connection is closed after this (75)",
    ),
    (
        "max_connections",
        env_var("max_connections"),
        int,
        "open connections at most, 503 above (1000)",
    ),
    ("max_pipelined", env_var("max_pipelined"), int, "requests read ahead per connection (16)"),
    (
        "write_buffer_bytes",
        env_var("write_buffer_bytes"),
        int,
        "unsent answer bytes per connection before it stops reading (256 KiB)",
    ),
    (
        "signing_key",
        env_var("signing_key"),
        _hex_key,
        "hex key; calls without its gateway signature get 403 (empty: no check)",
    ),
]
_BY_FLAG = {"--" + name.replace("_", "-"): name for name, *_ in OPTIONS}


def _argparse_exit(argv: Sequence[str]) -> None:
    """Let argparse print help or reject the command line (it exits)."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m ember_runtime",
        description="Serve a handle(event, context) function over HTTP.",
        epilog="Every flag also reads its EMBER_* environment variable.",
        allow_abbrev=False,
    )
    for name, var, _kind, help_ in OPTIONS:
        parser.add_argument("--" + name.replace("_", "-"), help=f"{help_} [{var}]")
    parser.parse_args(list(argv))
    raise SystemExit(2)


def _read_flags(argv: Sequence[str]) -> dict[str, str]:
    flags: dict[str, str] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        name, eq, value = arg.partition("=")
        if name not in _BY_FLAG:
            _argparse_exit(argv)
        if not eq:
            if i + 1 >= len(argv):
                _argparse_exit(argv)
            i += 1
            value = argv[i]
        flags[_BY_FLAG[name]] = value
        i += 1
    return flags


def parse_settings(argv: Sequence[str], env: Mapping[str, str] = os.environ) -> Settings:
    """Build settings; raises ``LoadError(INVALID_CONFIG)`` on a bad value."""
    flags = _read_flags(argv)
    values: dict[str, object] = {}
    for name, var, kind, _help in OPTIONS:
        raw = flags.get(name)
        if raw is None:
            raw = env.get(var) or None
        if raw is None:
            continue
        try:
            values[name] = kind(raw)  # type: ignore[operator]
        except ValueError:
            shown = "(hidden; hex, 32+ digits)" if name in SECRET_SETTINGS else repr(raw)
            raise LoadError(
                LoadFault.INVALID_CONFIG, f"{var} / --{name.replace('_', '-')}: bad value {shown}"
            ) from None
    if "target" not in values:
        raise LoadError(LoadFault.INVALID_CONFIG, "no handler given: set --target or EMBER_TARGET")
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
            (settings.worker_max_calls >= 0, "worker max calls must not be negative"),
            (settings.header_timeout_seconds > 0, "header timeout must be positive"),
            (settings.body_timeout_seconds > 0, "body timeout must be positive"),
            (settings.idle_timeout_seconds > 0, "idle timeout must be positive"),
            (settings.max_connections >= 1, "max connections must be at least 1"),
            (settings.max_pipelined >= 1, "max pipelined must be at least 1"),
            (settings.write_buffer_bytes >= 1024, "write buffer must be at least 1024 bytes"),
            (0 <= settings.port <= 65535, "port must be 0..65535"),
        )
        if not ok
    ]
    if problems:
        raise LoadError(LoadFault.INVALID_CONFIG, "; ".join(problems))
    return settings


def process_start_time() -> float:
    """Wall-clock time at which this process started (Linux ``/proc``),
    falling back to now; cold-start metrics count from here."""
    import time

    try:
        with open("/proc/self/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        start_ticks = int(fields[19])
        with open("/proc/stat", "rb") as f:
            btime = next(int(line.split()[1]) for line in f if line.startswith(b"btime"))
        return btime + start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return time.time()
