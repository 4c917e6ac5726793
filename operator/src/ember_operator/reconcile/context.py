"""What the handlers share for the operator's lifetime: config, the API
connection, and a little per-Function state.

The per-Function lock serialises the two writers of a Function's status (the
Function handler and the Deployment watcher) so the last write is always
computed from the freshest Deployment either of them has seen. The remembered
status lets the Deployment watcher skip writes that would change nothing,
which keeps 1,000 idle Functions cheap.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from ember_operator.config import Config
from ember_operator.kube import Kube
from ember_operator.status import SpecError

Key = tuple[str, str]  # (namespace, name)


@dataclass
class FunctionState:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    spec_error: SpecError | None = None
    last_status: dict[str, Any] | None = None


@dataclass
class Context:
    config: Config
    kube: Kube
    functions: dict[Key, FunctionState] = field(default_factory=dict)

    def state(self, key: Key) -> FunctionState:
        st = self.functions.get(key)
        if st is None:
            st = self.functions[key] = FunctionState()
        return st

    def forget(self, key: Key) -> None:
        self.functions.pop(key, None)


def context_of(memo: Any) -> Context:
    ctx = getattr(memo, "ember", None)
    if not isinstance(ctx, Context):
        raise RuntimeError("the operator's startup handler did not run")
    return ctx
