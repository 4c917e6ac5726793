"""Fixtures for the runtime's integration tests: real processes on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.runtime.runtime_harness import Runtime, start_runtime


@pytest.fixture(scope="module")
def module_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("runtime")


@pytest.fixture(scope="module")
def app_runtime(module_tmp: Path) -> Iterator[Runtime]:
    """The do-everything test function, sync, with small limits."""
    rt = start_runtime(
        module_tmp,
        "app.py",
        timeout_seconds=2,
        concurrency=2,
        queue_depth=8,
        max_body_bytes=4096,
        max_header_bytes=2048,
        function="test/app",
    )
    yield rt
    rt.stop()
