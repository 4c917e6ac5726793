"""Which HTTP Trigger owns a path: one rule, read by the gateway (to route)
and by the operator (to report ``PathConflict`` on the losers).

Both sides must agree, or a Trigger could say Ready while another one
serves its path. The rule is Kubernetes' usual tie-break: the older object
(``creationTimestamp``, then namespace/name) keeps what it claimed, so
creating a Trigger can never take a path away from one already serving.
Paths are global across namespaces: the gateway has one URL space.
``/fn`` and everything below it belongs to the default Function routes.

The gateway rebuilds its table from every claim; the operator keeps a
``PathIndex`` instead, which also says whose outcome a change moved, so
that a deleted or moved winner hands its path to the next claim without
rewriting the status of every HTTP Trigger.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

Key = tuple[str, str]  # (namespace, name)
_OWNS = object()  # in ``PathIndex.set``: not among the losers

FUNCTION_PREFIX = "/fn"


class HttpClaim(NamedTuple):
    """One HTTP Trigger's claim on a path."""

    namespace: str
    name: str
    path: str
    created: str  # creationTimestamp (RFC 3339 sorts as text); "" when unknown


def normalize_path(path: str) -> str:
    """``/api/`` and ``/api`` are one claim: a path matches itself and below."""
    return path.rstrip("/") or "/"


def reserved(path: str) -> bool:
    p = normalize_path(path)
    return p == FUNCTION_PREFIX or p.startswith(FUNCTION_PREFIX + "/")


def path_owners(
    claims: Iterable[HttpClaim],
) -> tuple[dict[str, HttpClaim], dict[tuple[str, str], HttpClaim | None]]:
    """(winner per normalized path, loser (namespace, name) -> the claim it
    lost to, or None for a path reserved for the Function routes)."""
    winners: dict[str, HttpClaim] = {}
    losers: dict[tuple[str, str], HttpClaim | None] = {}
    for claim in sorted(claims, key=lambda c: (c.created or "~", c.namespace, c.name)):
        path = normalize_path(claim.path)
        if reserved(path):
            losers[(claim.namespace, claim.name)] = None
        elif path in winners:
            losers[(claim.namespace, claim.name)] = winners[path]
        else:
            winners[path] = claim
    return winners, losers


def conflict_message(path: str, winner: HttpClaim | None) -> str:
    """The human half of a ``PathConflict`` condition."""
    if winner is None:
        return f"path {path!r} is reserved for the /fn/<namespace>/<name> routes"
    return (
        f"path {normalize_path(path)!r} is already served by Trigger"
        f" {winner.namespace}/{winner.name} (the older claim wins)"
    )


class PathIndex:
    """Every HTTP Trigger's claim by (namespace, name), and who lost to whom."""

    def __init__(self) -> None:
        self.claims: dict[Key, HttpClaim] = {}
        self.losers: dict[Key, HttpClaim | None] = {}

    def set(self, key: Key, claim: HttpClaim | None) -> set[Key]:
        """Record (or, with None, drop) ``key``'s claim; returns the other
        Triggers whose outcome (won, or lost to whom) changed with it."""
        if self.claims.get(key) == claim:
            return set()
        if claim is None:
            del self.claims[key]
        else:
            self.claims[key] = claim
        before = self.losers
        self.losers = path_owners(self.claims.values())[1]
        moved = {
            k
            for k in before.keys() | self.losers.keys()
            if before.get(k, _OWNS) != self.losers.get(k, _OWNS)
        }
        return moved - {key}

    def seed(self, claims: Iterable[HttpClaim]) -> None:
        """Every claim at once, before any Trigger reports (the operator's
        start): a Trigger then learns its outcome against all its rivals,
        not only those handled before it."""
        for claim in claims:
            self.claims[(claim.namespace, claim.name)] = claim
        self.losers = path_owners(self.claims.values())[1]

    def conflict(self, key: Key) -> str | None:
        """The ``PathConflict`` message for ``key``, or None while it owns its path."""
        if key not in self.losers:
            return None
        return conflict_message(self.claims[key].path, self.losers[key])
