"""Builders shared by the operator's unit tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from ember_operator.config import Config
from ember_operator.render.common import FunctionObject


def make_function(name: str = "hello", namespace: str = "team-a", **spec: Any) -> FunctionObject:
    body = {
        "metadata": {"name": name, "namespace": namespace, "uid": "uid-1"},
        "spec": {"handler": "main:handle", "source": "def handle(e, c):\n    return e\n", **spec},
    }
    if "image" in spec:
        body["spec"].pop("source")
    return FunctionObject.from_body(body)


@pytest.fixture(name="make_function")
def make_function_fixture() -> Callable[..., FunctionObject]:
    return make_function


@pytest.fixture
def config() -> Config:
    return Config()
