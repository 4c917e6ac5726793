"""What the dispatcher reads: one *source* per Function (its async stream)
and one per queue Trigger (the user's stream, through a consumer group of
its own), each with the streams (*lanes*) it is read from.

Every source has two lanes: its main stream, and its retry stream in its
own slot, where due retries and redriven dead letters arrive. A queue
Trigger's retries cannot go back into the user's stream: every other
consumer group reading that stream would see them again.

``SourceSet`` is fed the way the gateway's routes are: ``apply(kind,
event, object)`` from an informer, or from a static list in tests.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from ember_operator.dispatch import keys
from ember_operator.dispatch.policy import RetryPolicy


@dataclass(frozen=True)
class Lane:
    stream: str
    group: str
    owned: bool  # Ember's own stream, in the source's slot: entries deleted once acked
    start: str = "0"  # where a new consumer group starts


@dataclass(frozen=True)
class Source:
    kind: str  # "function" | "trigger"
    namespace: str
    name: str  # the Function's or the Trigger's
    function: str  # the Function it invokes
    slot: keys.SlotKeys
    main: Lane
    dead_letters: str
    policy: RetryPolicy
    concurrency: int
    max_age: float | None = None  # seconds after submission; older ones fail unrun

    def __post_init__(self) -> None:
        # Sources key the dispatcher's per-message metrics: hashing every
        # field on each lookup showed in its profile, so the hash is kept.
        fields = (self.kind, self.namespace, self.name, self.function, self.slot, self.main)
        object.__setattr__(self, "_hash", hash((*fields, self.policy, self.concurrency)))

    def __hash__(self) -> int:
        return self._hash  # type: ignore[attr-defined,no-any-return]

    @property
    def label(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def lanes(self) -> tuple[Lane, Lane]:
        return self.main, Lane(self.slot.retries, keys.GROUP, owned=True)

    @property
    def dead_letters_owned(self) -> bool:
        return self.kind == "function"


def function_source(
    namespace: str,
    name: str,
    policy: RetryPolicy,
    concurrency: int,
    max_age: float | None = None,
) -> Source:
    slot = keys.function_keys(namespace, name)
    return Source(
        "function",
        namespace,
        name,
        name,
        slot,
        Lane(slot.stream, keys.GROUP, owned=True),
        slot.dead_letters,
        policy,
        concurrency,
        max_age,
    )


def retry_policy(spec: Mapping[str, Any], default: RetryPolicy) -> RetryPolicy:
    """``maxRetries`` and ``backoff`` (a queue Trigger's ``spec.queue``, a
    Function's ``spec.async``) over ``default``; a backoff given in part
    takes the API's defaults (1 s, 60 s) for the rest."""
    policy = default
    if spec.get("maxRetries") is not None:
        policy = replace(policy, max_retries=int(spec["maxRetries"]))
    backoff = spec.get("backoff")
    if isinstance(backoff, Mapping):
        initial = float(backoff.get("initialSeconds", 1))
        policy = replace(
            policy, initial_seconds=initial, max_seconds=float(backoff.get("maxSeconds", 60))
        )
    return policy


def async_policy(
    spec: Mapping[str, Any], default: RetryPolicy, concurrency: int
) -> tuple[RetryPolicy, int, float | None]:
    """A Function's ``spec.async`` over the install's defaults: its retry
    policy, its concurrency per dispatcher replica, and its maximum age."""
    own = spec.get("async")
    if not isinstance(own, Mapping):
        return default, concurrency, None
    max_age = float(own["maxAgeSeconds"]) if own.get("maxAgeSeconds") else None
    return retry_policy(own, default), int(own.get("concurrency") or concurrency), max_age


# A queue Trigger's policy where its spec (and the API's defaults) say nothing.
TRIGGER_POLICY = RetryPolicy(5, 1.0, 60.0)


def trigger_source(
    namespace: str, name: str, spec: Mapping[str, Any], concurrency: int
) -> Source | None:
    """A queue Trigger's source (None for other kinds, or a spec without a
    stream); ``spec.queue.concurrency`` bounds its calls in flight, else
    ``concurrency`` (the dispatcher's default). A new group starts at the
    stream's end: a Trigger created on a stream with history does not
    replay it."""
    queue = spec.get("queue")
    function = str(spec.get("function") or "")
    if not isinstance(queue, Mapping) or not queue.get("stream") or not function:
        return None
    stream = str(queue["stream"])
    dead_letters = str(queue.get("deadLetterStream") or f"{stream}-dlq")
    if stream.startswith(keys.PREFIX + ":") or dead_letters.startswith(keys.PREFIX + ":"):
        return None  # Ember's own keys (the API server refuses these too)
    policy = retry_policy(queue, TRIGGER_POLICY)
    return Source(
        "trigger",
        namespace,
        name,
        function,
        keys.trigger_keys(namespace, name),
        Lane(stream, keys.trigger_group(namespace, name), owned=False, start="$"),
        dead_letters,
        policy,
        int(queue.get("concurrency") or concurrency),
    )


SourceKey = tuple[str, str, str]  # kind, namespace, name


class SourceSet:
    """The sources now, kept from Function and Trigger events; ``changed``
    is called after each change."""

    def __init__(
        self, policy: RetryPolicy, concurrency: int, changed: Callable[[], None] = lambda: None
    ) -> None:
        self.policy = policy
        self.concurrency = concurrency
        self.sources: dict[SourceKey, Source] = {}
        self.changed = changed

    def apply(self, kind: str, event: str, obj: Mapping[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        ns, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
        gone = event == "DELETED" or bool(meta.get("deletionTimestamp"))
        key: SourceKey = ("function" if kind == "Function" else "trigger", ns, name)
        source: Source | None = None
        if not gone and kind == "Function":
            spec = obj.get("spec") or {}
            policy, concurrency, max_age = async_policy(spec, self.policy, self.concurrency)
            source = function_source(ns, name, policy, concurrency, max_age)
        elif not gone and kind == "Trigger":
            source = trigger_source(ns, name, obj.get("spec") or {}, self.concurrency)
        elif kind not in ("Function", "Trigger"):
            return
        if source is None:
            if self.sources.pop(key, None) is not None:
                self.changed()
        elif self.sources.get(key) != source:
            self.sources[key] = source
            self.changed()
