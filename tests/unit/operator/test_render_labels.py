"""Labels: Kubernetes' conventions, and a selector that can never change."""

from __future__ import annotations

import pytest

from ember_operator.render import labels

pytestmark = pytest.mark.unit


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
