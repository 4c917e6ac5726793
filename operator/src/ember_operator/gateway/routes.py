"""The routing table: which Function a request path means, and which
methods it takes there. Pure and in memory, fed by ``feed``; no API call
happens per request.

Two kinds of route:
- ``/fn/<namespace>/<name>[/<rest>]`` for every Function; the function sees
  ``/<rest>`` (or ``/``) and the query, and any method;
- HTTP Triggers (``spec.http.path`` and ``methods``): a Trigger path
  matches itself and every path below it, the longest claimed prefix wins,
  and the function sees the original path. Who owns a contested path is
  ``diagnose.http_paths``' rule, shared with the operator's status.
"""

from __future__ import annotations

from typing import NamedTuple

from ember_operator.diagnose.http_paths import HttpClaim, normalize_path, path_owners
from ember_operator.kube.objects import Key

ALL_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


class TriggerRoute(NamedTuple):
    namespace: str
    name: str
    function: str
    path: str
    methods: frozenset[bytes]
    allow: str  # the Allow header of a 405 here

    @property
    def function_key(self) -> Key:
        return self.namespace, self.function


def trigger_route(
    namespace: str, name: str, function: str, path: str, methods: list[str]
) -> TriggerRoute:
    """A Trigger's route; GET implies HEAD, as HTTP says it does."""
    wanted = {m.upper() for m in methods} or {"GET", "POST"}
    if "GET" in wanted:
        wanted.add("HEAD")
    ordered = [m for m in ALL_METHODS if m in wanted]
    return TriggerRoute(
        namespace,
        name,
        function,
        normalize_path(path),
        frozenset(m.encode() for m in ordered),
        ", ".join(ordered),
    )


# (function, the path the function sees, the Trigger route or None for /fn)
Match = tuple[Key, bytes, TriggerRoute | None]


class RouteTable:
    def __init__(self) -> None:
        self.functions: set[Key] = set()
        self.triggers: dict[Key, tuple[TriggerRoute, str]] = {}  # key -> (route, created)
        self.by_path: dict[bytes, TriggerRoute] = {}
        # Trigger (namespace, name) -> the claim it lost to (None: reserved path).
        self.conflicts: dict[Key, HttpClaim | None] = {}

    # --- updates (from the feed) -----------------------------------------

    def set_function(self, key: Key) -> None:
        self.functions.add(key)

    def remove_function(self, key: Key) -> None:
        self.functions.discard(key)

    def set_trigger(self, route: TriggerRoute, created: str) -> None:
        self.triggers[(route.namespace, route.name)] = (route, created)
        self._rebuild()

    def remove_trigger(self, key: Key) -> None:
        if self.triggers.pop(key, None) is not None:
            self._rebuild()

    def _rebuild(self) -> None:
        # Triggers change rarely; rebuilding the whole index keeps it simple.
        claims = [
            HttpClaim(r.namespace, r.name, r.path, created) for r, created in self.triggers.values()
        ]
        winners, self.conflicts = path_owners(claims)
        self.by_path = {
            path.encode("latin-1"): self.triggers[(c.namespace, c.name)][0]
            for path, c in winners.items()
        }

    # --- lookups (per request) -------------------------------------------

    def lookup(self, path: bytes) -> Match | None:
        if path[:4] == b"/fn/" or path == b"/fn":
            parts = path[4:].split(b"/", 2)
            if len(parts) < 2 or not parts[0] or not parts[1]:
                return None
            key = (parts[0].decode("latin-1"), parts[1].decode("latin-1"))
            if key not in self.functions:
                return None
            return key, (b"/" + parts[2] if len(parts) == 3 else b"/"), None
        by_path = self.by_path
        if not by_path:
            return None
        p = path.rstrip(b"/") or b"/"
        while True:
            route = by_path.get(p)
            if route is not None:
                return route.function_key, path, route
            if p == b"/":
                return None
            p = p[: p.rfind(b"/")] or b"/"
