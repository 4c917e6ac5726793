"""Names of a Function's objects: one place, stable values."""

from __future__ import annotations

import pytest

from ember_operator.render import names

pytestmark = pytest.mark.unit


def test_names() -> None:
    assert names.deployment_name("hello") == "hello"
    assert names.service_name("hello") == "hello"
    assert names.configmap_name("hello") == "hello-source"
