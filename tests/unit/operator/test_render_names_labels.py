"""Names and labels: one place, stable values."""

from __future__ import annotations

import pytest

from ember_operator.render import labels, names

pytestmark = pytest.mark.unit


def test_names() -> None:
    assert names.deployment_name("hello") == "hello"
    assert names.service_name("hello") == "hello"
    assert names.configmap_name("hello") == "hello-source"


def test_labels_carry_conventions_and_selector_is_minimal() -> None:
    got = labels.function_labels("hello")
    assert got == {
        "app.kubernetes.io/name": "hello",
        "app.kubernetes.io/instance": "hello",
        "app.kubernetes.io/component": "function",
        "app.kubernetes.io/managed-by": "ember-operator",
        "app.kubernetes.io/part-of": "ember",
        "ember.dev/function": "hello",
    }
    assert labels.selector_labels("hello") == {"ember.dev/function": "hello"}
    assert labels.selector_labels("hello").items() <= got.items()
