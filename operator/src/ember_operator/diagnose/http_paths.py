"""Which HTTP Trigger owns a path: one rule, read by the gateway (to route)
and by the operator (to report ``PathConflict`` on the losers).

Both sides must agree, or a Trigger could say Ready while another one
serves its path. The rule is Kubernetes' usual tie-break: the older object
(``creationTimestamp``, then namespace/name) keeps what it claimed, so
creating a Trigger can never take a path away from one already serving.
Paths are global across namespaces: the gateway has one URL space.
``/fn`` and everything below it belongs to the default Function routes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

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
