"""What the handlers share for the operator's lifetime: config, the API
connection, the informers, and a little per-Function and per-Trigger state.

The per-Function lock serialises the two writers of a Function's status (the
Function handler and the Deployment watcher) so the last write is always
computed from the freshest Deployment either of them has seen. The remembered
status lets the Deployment watcher skip writes that would change nothing,
which keeps 1,000 idle Functions cheap. The remembered Deployment summary
and pod problems let a pod event report without reading anything back.

Triggers are remembered by the Function they name, so that a Function's
creation or deletion updates its Triggers' status without a list call, and
HTTP Triggers by the path they claim (``PathIndex``), so that a Trigger
that wins or loses a path learns it from its rival's event. The index is
seeded with every claim before the first Trigger reports (see
``reconcile.trigger``), so a (re)started operator never judges a path from
the few Triggers it happened to handle first.

``HandledSpecs`` is kopf's diff base (the last spec handled per object) kept
in this process. A restarted operator starts empty, so kopf treats every
object it lists as new and runs its create handler, which converges like
any other run: the handlers are idempotent and compare with the live
children before writing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, cast

import kopf

from ember_operator.config import Config
from ember_operator.diagnose.deployment import Summary
from ember_operator.diagnose.http_paths import HttpClaim, PathIndex
from ember_operator.diagnose.pods import PodProblem
from ember_operator.kube.client import Kube
from ember_operator.kube.informer import Informer
from ember_operator.kube.objects import Key
from ember_operator.status import SpecError


class HandledSpecs(kopf.DiffBaseStorage):
    """kopf's diff base in memory, per (kind, namespace, name) and uid."""

    def __init__(self) -> None:
        super().__init__()
        self._specs: dict[tuple[str, str, str], tuple[str, kopf.BodyEssence]] = {}

    def build(
        self, *, body: kopf.Body, extra_fields: Iterable[Any] | None = None
    ) -> kopf.BodyEssence:
        """kopf's essence (spec, labels, annotations and any extra fields),
        from a copy of only those parts: kopf deep-copies the whole body,
        status and managedFields included, on every event (8% of the
        operator's CPU in the benchmark)."""
        extra = list(extra_fields or [])
        tops = {(f.split(".")[0] if isinstance(f, str) else f[0]) for f in extra}
        slim = {k: v for k, v in body.items() if k != "status" or k in tops}
        if "metadata" not in tops:
            meta = body.get("metadata") or {}
            slim["metadata"] = {k: meta[k] for k in ("labels", "annotations") if k in meta}
        return super().build(body=kopf.Body(cast(kopf.RawBody, slim)), extra_fields=extra)

    @staticmethod
    def _key(body: kopf.Body) -> tuple[tuple[str, str, str], str]:
        """(kind, namespace, name), and the uid that tells objects of one name apart."""
        meta = body.get("metadata") or {}
        name = (str(body.get("kind")), str(meta.get("namespace")), str(meta.get("name")))
        return name, str(meta.get("uid"))

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        key, uid = self._key(body)
        hit = self._specs.get(key)
        if hit is None or hit[0] != uid:
            return None  # never handled, or an older object of the same name
        return hit[1]

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        # Nothing goes into the patch: no write to the object.
        key, uid = self._key(body)
        self._specs[key] = (uid, essence)

    def forget(self, kind: str, namespace: str, name: str) -> None:
        self._specs.pop((kind, namespace, name), None)

    def __len__(self) -> int:
        return len(self._specs)


class RetryProgress(kopf.AnnotationsProgressStorage):
    """kopf's retry bookkeeping in ``ember.dev/*`` annotations, written only
    while a handler is being retried. kopf would also brand every object it
    touches with an ``ember.dev/kopf-managed`` marker (so that other kopf
    operators skip these annotations), which is one more write per new
    Function; the marker is left out, so a handler that succeeds on its first
    run writes nothing of kopf's."""

    def _store_marker(self, prefix: str, patch: kopf.Patch, body: kopf.Body) -> None:
        return None


@dataclass
class FunctionState:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    spec_error: SpecError | None = None
    last_status: dict[str, Any] | None = None
    summary: Summary | None = None  # the last Deployment summary reported
    pod_problems: dict[str, PodProblem] = field(default_factory=dict)  # by pod name


@dataclass
class TriggerState:
    function: str
    kind: str
    generation: int | None = None
    conditions: list[dict[str, Any]] = field(default_factory=list)
    url: str | None = None  # the status.url last written (or found stored)
    path: str | None = None  # spec.http.path; None for other kinds
    # Whether the Function exists, as last learnt (the Trigger's own GET or
    # the Function's events); None until the Trigger's handler has looked.
    found: bool | None = None
    problem: str | None = None  # diagnose.trigger.spec_problem (a schedule that cannot run)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


@dataclass
class Context:
    config: Config
    kube: Kube
    handled: HandledSpecs = field(default_factory=HandledSpecs)
    functions: dict[Key, FunctionState] = field(default_factory=dict)
    triggers: dict[Key, TriggerState] = field(default_factory=dict)
    # (namespace, Function name) -> names of the Triggers that name it.
    triggers_by_function: dict[Key, set[str]] = field(default_factory=dict)
    paths: PathIndex = field(default_factory=PathIndex)  # HTTP Triggers' claims
    paths_seeded: bool = False  # from kopf's index of every claim, before any report
    informers: list[Informer] = field(default_factory=list)  # started at startup
    reconciling: asyncio.Semaphore = field(init=False)

    def __post_init__(self) -> None:
        self.reconciling = asyncio.Semaphore(self.config.reconcile_concurrency)

    def state(self, key: Key) -> FunctionState:
        st = self.functions.get(key)
        if st is None:
            st = self.functions[key] = FunctionState()
        return st

    def forget(self, key: Key) -> None:
        self.functions.pop(key, None)
        self.handled.forget("Function", *key)

    def trigger(self, key: Key, function: str, kind: str) -> TriggerState:
        """The Trigger's state, filed under the Function it names now."""
        t = self.triggers.get(key)
        if t is None:
            t = self.triggers[key] = TriggerState(function=function, kind=kind)
        elif t.function != function:
            self._unfile(key, t.function)
        t.function, t.kind = function, kind
        self.triggers_by_function.setdefault((key[0], function), set()).add(key[1])
        return t

    def claim_path(self, key: Key, path: str | None, created: str) -> set[Key]:
        """Record the Trigger's HTTP path (None: it claims none); returns the
        other Triggers whose path conflict this moved."""
        claim = None if path is None else HttpClaim(key[0], key[1], path, created)
        return self.paths.set(key, claim)

    def forget_trigger(self, key: Key, *, path_too: bool = True) -> set[Key]:
        """Forget a deleted Trigger; returns the Triggers its path passes to.

        ``path_too=False`` (a status write found it gone) keeps its claim
        until its DELETED event, as the gateway keeps its route: that event
        then hands the path on, and only once."""
        t = self.triggers.pop(key, None)
        if t is not None:
            self._unfile(key, t.function)
        self.handled.forget("Trigger", *key)
        return self.paths.set(key, None) if path_too else set()

    def _unfile(self, key: Key, function: str) -> None:
        names = self.triggers_by_function.get((key[0], function))
        if names is not None:
            names.discard(key[1])
            if not names:
                del self.triggers_by_function[(key[0], function)]

    def triggers_of(self, namespace: str, function: str) -> list[tuple[Key, TriggerState]]:
        names = self.triggers_by_function.get((namespace, function)) or ()
        return [((namespace, n), self.triggers[(namespace, n)]) for n in sorted(names)]


def context_of(memo: Any) -> Context:
    ctx = getattr(memo, "ember", None)
    if not isinstance(ctx, Context):
        raise RuntimeError("the operator's startup handler did not run")
    return ctx
