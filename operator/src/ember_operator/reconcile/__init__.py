"""The kopf handlers. Importing this package registers them all.

``kopf run -m ember_operator.reconcile`` (or ``python -m ember_operator``)
runs them; tests do the same through ``kopf.testing.KopfRunner``.
"""

from ember_operator.reconcile import function, lifecycle, trigger

__all__ = ["function", "lifecycle", "trigger"]
