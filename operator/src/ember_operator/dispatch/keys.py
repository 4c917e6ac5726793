"""Every Redis key the async path uses, in one place.

Each Function and each queue Trigger owns a *slot*: its keys share one
hash tag (``{fn:<ns>/<name>}``, ``{tr:<ns>/<name>}``), so on a Redis
Cluster the Lua scripts that must be atomic (submit with its idempotency
key; ack with the record update; the move of due retries) touch one slot
only. A queue Trigger's own stream (``spec.queue.stream``) and its
dead-letter stream are the user's names and live wherever they hash: the
few operations that span them and the Trigger's slot are ordered so that
a crash between two steps duplicates, never loses (see ``outcomes``).
"""

from __future__ import annotations

from dataclasses import dataclass

PREFIX = "ember"
# The consumer group on Ember's own streams (one per stream: they are
# read by the dispatcher only, and entries are deleted once acknowledged).
GROUP = "ember-dispatch"


def function_tag(namespace: str, name: str) -> str:
    return f"{{fn:{namespace}/{name}}}"


def trigger_tag(namespace: str, name: str) -> str:
    return f"{{tr:{namespace}/{name}}}"


@dataclass(frozen=True)
class SlotKeys:
    """The keys of one Function's or one queue Trigger's slot."""

    tag: str

    def _k(self, what: str) -> str:
        return f"{PREFIX}:{self.tag}:{what}"

    @property
    def stream(self) -> str:
        """A Function's async stream (submissions land here)."""
        return self._k("async")

    @property
    def dead_letters(self) -> str:
        """A Function's dead-letter stream."""
        return self._k("dlq")

    @property
    def retries(self) -> str:
        """Due retries (and redriven dead letters) are moved into this stream."""
        return self._k("retry")

    @property
    def delayed(self) -> str:
        """Retries waiting for their time: a sorted set scored by due time."""
        return self._k("delayed")

    @property
    def meta(self) -> str:
        """A queue Trigger's stream names, for redrive without the API server."""
        return self._k("meta")

    def record(self, invocation_id: str) -> str:
        return self._k(f"inv:{invocation_id}")

    def idempotency(self, key: str) -> str:
        """Idempotency key -> the invocation it made (async submissions)."""
        return self._k(f"idem:{key}")

    def done(self, key: str) -> str:
        """Set once an invocation carrying this idempotency key succeeded
        (queue messages: a key that already succeeded is not run again)."""
        return self._k(f"done:{key}")


def function_keys(namespace: str, name: str) -> SlotKeys:
    return SlotKeys(function_tag(namespace, name))


def trigger_keys(namespace: str, name: str) -> SlotKeys:
    return SlotKeys(trigger_tag(namespace, name))


def trigger_group(namespace: str, name: str) -> str:
    """The consumer group a queue Trigger reads its user stream with."""
    return f"{PREFIX}/{namespace}/{name}"
