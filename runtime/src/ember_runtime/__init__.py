"""Ember's function runtime: loads ``module:function`` and serves invocations.

It carries no Kubernetes code: a function image holds this package, its HTTP
stack and the user's code, nothing more. Handlers import ``Response`` and,
for type hints, ``Context`` from here.
"""

from ember_runtime.contract import Context, Response

__all__ = ["Context", "Response"]
