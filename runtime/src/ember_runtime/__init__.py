"""Ember's function runtime: loads ``module:function`` and serves invocations.

It carries no Kubernetes code: a function image holds this package, its HTTP
stack and the user's code, nothing more. Handlers import ``Response`` and,
for type hints, ``Context`` from here. They are loaded on first use, so that
``python -m ember_runtime`` can fork its zygote before paying for them.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ember_runtime.contract import Context, Response

__all__ = ["Context", "Response"]


def __getattr__(name: str) -> object:
    if name in __all__:
        from ember_runtime import contract

        return getattr(contract, name)
    raise AttributeError(f"module 'ember_runtime' has no attribute {name!r}")
