"""Importing this module registers every kopf handler of the operator.

``kopf run -m ember_operator.handlers`` (or ``python -m ember_operator``)
runs them; tests do the same through ``kopf.testing.KopfRunner``.
"""

from ember_operator.reconcile import function, lifecycle, trigger

__all__ = ["function", "lifecycle", "trigger"]
