"""Fixtures for the gateway's integration tests: the gateway in-process on
loopback, in front of real runtime processes, fed by a fake watch."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.runtime.runtime_harness import Runtime, free_port, start_runtime


@pytest.fixture(scope="module")
def module_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gateway")


@pytest.fixture(scope="module")
def runtime(module_tmp: Path) -> Iterator[Runtime]:
    """One real runtime (sync, concurrency 2, a queue of 2 beyond it)."""
    rt = start_runtime(
        module_tmp, "app.py", concurrency=2, queue_depth=2, timeout_seconds=5, function="t/app"
    )
    yield rt
    rt.stop()


@pytest.fixture
def dead_port() -> int:
    return free_port()  # nothing listens there: connections are refused
