"""Labels, selectors and annotation keys shared by every owned object.

The selector is deliberately one label: a Deployment's selector is immutable,
so it must never depend on anything that could change when the labels
convention evolves.
"""

from __future__ import annotations

FUNCTION_LABEL = "ember.dev/function"
SPEC_HASH_ANNOTATION = "ember.dev/spec-hash"
SOURCE_HASH_ANNOTATION = "ember.dev/source-hash"
MANAGED_BY = "ember-operator"


def selector_labels(function: str) -> dict[str, str]:
    return {FUNCTION_LABEL: function}


def function_labels(function: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": function,
        "app.kubernetes.io/instance": function,
        "app.kubernetes.io/component": "function",
        "app.kubernetes.io/managed-by": MANAGED_BY,
        "app.kubernetes.io/part-of": "ember",
        **selector_labels(function),
    }
